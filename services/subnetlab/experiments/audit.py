"""Claim 6: rewards are not auditable from the chain.

Each point is one real testnet (`audit_run`): (a) every epoch's incentive and dividends
recomputed from the weights and stake on chain (the block log replayed from genesis)
against what the ledger served: the match rate; (b) every evidence document audited, per
validator behaviour (honest, weight-copier, lazy: real processes) and per way a copying
validator fabricates plausible evidence (scripted): how many the audit flags, and how many
it would flag without the miners' signatures (the reasons that do not rest on them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from subnetlab.experiments.audit_run import FABRICATIONS, Audited, Measured, Setup, run
from subnetlab.experiments.common import Row, fmt, mean, rounded
from subnetlab.experiments.stats import mean_ci
from subnetlab.experiments.sweep import Param
from subnetlab.sim.plot_style import new_figure

PARAMS = (
    Param("epochs", "--epochs", int, 8, 1000, (12,), (9,),
          "epochs the subnet runs (warm-up, then one fabrication per epoch for four)"),
)
BEHAVIOURS = ("honest", "weight-copier", "lazy")
KINDS = (*BEHAVIOURS, *(f"fabricated: {f}" for f in FABRICATIONS))


def field(kind: str) -> str:
    """The row-field stem of a kind: `honest`, `weight_copier`, `fabricated_self_signed`."""
    return kind.replace("fabricated: ", "fabricated_").replace("-", "_")


def run_point(point: Row) -> Row:
    """One real network; the audit's figures."""
    return row_of(point, run(Setup(int(point["seed"]), int(point["epochs"]))))


def row_of(point: Row, measured: Measured) -> Row:
    row: Row = {**point, "yuma_epochs": measured.yuma_epochs,
                "yuma_values": measured.yuma_values,
                "yuma_match_rate": rounded(measured.yuma_matches / measured.yuma_values
                                           if measured.yuma_values else 0.0),
                "yuma_worst_difference": measured.yuma_worst,
                "chain_replayed": measured.chain_verified}
    for kind in KINDS:
        docs = [a for a in measured.audited if a.kind == kind]
        stem = field(kind)
        row[f"{stem}_documents"] = len(docs)
        row[f"{stem}_flagged"] = sum(not a.ok for a in docs)
        row[f"{stem}_flagged_without_signatures"] = sum(_flagged_unsigned(a) for a in docs)
        row[f"{stem}_unprovable"] = sum(a.unprovable for a in docs)
    return row


def _flagged_unsigned(audited: Audited) -> bool:
    """Would the audit flag it without the miners' signatures (its other reasons)?"""
    return audited.other_reasons > 0


def rate(rows: Sequence[Row], kind: str, suffix: str = "flagged") -> tuple[float, float]:
    """The share of `kind`'s documents flagged (mean over seeds and its 95% half-width)."""
    stem = field(kind)
    return mean_ci([r[f"{stem}_{suffix}"] / r[f"{stem}_documents"] for r in rows
                    if r[f"{stem}_documents"]])


def summary(rows: Sequence[Row]) -> list[str]:
    match, half = mean_ci([r["yuma_match_rate"] for r in rows])
    lines = [
        "(a) Yuma recomputed from on-chain weights and stake against the served metagraph:",
        "",
        "| seed | epochs compared | values compared | match rate | worst difference "
        "| block log replays |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['yuma_epochs']} | {r['yuma_values']} | "
              f"{fmt(r['yuma_match_rate'])} | {r['yuma_worst_difference']:.2g} | "
              f"{'yes' if r['chain_replayed'] else 'NO'} |" for r in rows]
    lines += ["", f"Match rate {fmt(match)} ± {fmt(half)} over {len(rows)} seed(s).", "",
              "(b) The evidence audit, by whose evidence it is (documents flagged, mean over "
              "seeds, 95% CI):", "",
              "| evidence of | documents | flagged | flagged without miner signatures "
              "| noted unprovable |", "|---|---|---|---|---|"]
    for kind in KINDS:
        stem = field(kind)
        if not any(r[f"{stem}_documents"] for r in rows):
            continue
        (m, h), (u, uh) = rate(rows, kind), rate(rows, kind, "flagged_without_signatures")
        docs = sum(r[f"{stem}_documents"] for r in rows)
        unprovable = sum(r[f"{stem}_unprovable"] for r in rows)
        lines.append(f"| {kind} | {docs} | {fmt(m)} ± {fmt(h)} | {fmt(u)} ± {fmt(uh)} | "
                     f"{unprovable} |")
    return lines


def verdict(rows: Sequence[Row]) -> str:
    match = mean([r["yuma_match_rate"] for r in rows])
    values = sum(r["yuma_values"] for r in rows)
    honest = rate(rows, "honest")[0]
    signed = [f"fabricated: {f}" for f in FABRICATIONS if f != "downgraded"]
    caught = mean([rate(rows, k)[0] for k in signed])
    before = mean([rate(rows, k, "flagged_without_signatures")[0] for k in signed])
    downgraded = rate(rows, "fabricated: downgraded")[0]
    copier, lazy = rate(rows, "weight-copier")[0], rate(rows, "lazy")[0]
    return (f"Rewards are auditable from the chain: Yuma recomputed from on-chain weights and "
            f"stake matches {match:.1%} of {values} served incentive and dividend values; with "
            f"the validator's evidence the audit flags {honest:.0%} of honest documents, "
            f"{copier:.0%} of weight-copier and {lazy:.0%} of lazy ones (both declare their "
            f"behaviour), and {caught:.0%} of fabricated answers now that miners sign them "
            f"({before:.0%} without the signatures), but an old-format document without "
            f"signatures is still only noted as unprovable ({downgraded:.0%} flagged).")


def figure(rows: Sequence[Row], path: Path) -> None:
    """Share of documents flagged per kind, with and without miner signatures."""
    fig = new_figure(9, 4.2)
    ax = fig.subplots()
    kinds = [k for k in KINDS if any(r[f"{field(k)}_documents"] for r in rows)]
    xs = list(range(len(kinds)))
    width = 0.38
    for offset, suffix, label, colour in (
            (-width / 2, "flagged_without_signatures", "audit without miner signatures",
             "#bbbbbb"),
            (width / 2, "flagged", "audit with miner signatures", "#1f77b4")):
        points = [rate(rows, k, suffix) for k in kinds]
        ax.bar([x + offset for x in xs], [p[0] for p in points], width,
               yerr=[p[1] for p in points], capsize=3, label=label, color=colour)
    ax.set_xticks(xs, [k.replace("fabricated: ", "fabricated:\n") for k in kinds], fontsize=8)
    match = mean([r["yuma_match_rate"] for r in rows])
    ax.set(ylabel="share of evidence documents flagged", ylim=(0, 1.1),
           title=f"evidence audit by behaviour (Yuma recomputed from chain: {match:.1%} match)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
