"""The validator: tasks, scoring, weights, evidence and the organic gateway."""
