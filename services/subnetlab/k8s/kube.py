"""The few Kubernetes API calls the operator (and `experiment run --kubernetes`) makes, as
plain JSON over async HTTP.

Why not the generated `kubernetes` client for the calls: its typed models changed shape
between releases (pydantic models since v35), the operator only needs a handful of verbs
on six kinds, and it runs inside kopf's event loop, where a synchronous client would need
a thread per call. Credentials still come from `kubernetes.config` (kubeconfig or the
pod's service account, with token refresh), so every authentication method it supports
works here too.

Writes of owned objects use server-side apply (field manager `subnetlab-operator`): the
same body applied twice, or by a restarted operator, changes nothing.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

import httpx
from kubernetes import config as kube_config
from kubernetes.client import Configuration

Body = dict[str, Any]
FIELD_MANAGER = "subnetlab-operator"

# kind -> (API prefix, plural)
KINDS: dict[str, tuple[str, str]] = {
    "Secret": ("/api/v1", "secrets"),
    "Service": ("/api/v1", "services"),
    "Event": ("/api/v1", "events"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Job": ("/apis/batch/v1", "jobs"),
    "Pod": ("/api/v1", "pods"),
    "Subnet": ("/apis/subnetlab.io/v1alpha1", "subnets"),
    "Neuron": ("/apis/subnetlab.io/v1alpha1", "neurons"),
}


class KubeError(RuntimeError):
    """The API server refused a request; `status` is the HTTP status (0: unreachable)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message

    @property
    def temporary(self) -> bool:
        """Worth retrying: unreachable, throttled, conflicting or failing server-side."""
        return self.status in (0, 409, 429) or self.status >= 500


def path(kind: str, namespace: str | None = None, name: str | None = None,
         sub: str | None = None) -> str:
    """The REST path of a kind's collection, one object, or its subresource."""
    prefix, plural = KINDS[kind]
    parts = [prefix]
    if namespace is not None:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(plural)
    if name is not None:
        parts.append(quote(name, safe=""))
    if sub is not None:
        parts.append(sub)
    return "/".join(parts)


def load_configuration() -> Configuration:
    """In a pod: its service account; elsewhere: $KUBECONFIG or ~/.kube/config."""
    configuration = Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration)
    else:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration)
    return configuration


def _ssl_context(configuration: Configuration) -> ssl.SSLContext | bool:
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file and configuration.key_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


class Kube:
    """An async client of one API server."""

    def __init__(self, configuration: Configuration, timeout: float = 30.0) -> None:
        self.configuration = configuration
        self.http = httpx.AsyncClient(base_url=configuration.host,
                                      verify=_ssl_context(configuration), timeout=timeout)

    @classmethod
    def from_environment(cls) -> Kube:
        return cls(load_configuration())

    async def aclose(self) -> None:
        await self.http.aclose()

    def _auth_headers(self) -> dict[str, str]:
        """Token headers, asked for on every request: `auth_settings` runs the refresh
        hook (service-account tokens rotate on disk) and names the header itself, which
        differs between client releases."""
        headers: dict[str, str] = {}
        settings = cast(Mapping[str, Mapping[str, Any]], self.configuration.auth_settings())
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        return headers

    async def request(self, method: str, url: str, *, body: Any = None,
                      content_type: str = "application/json",
                      params: Mapping[str, str] | None = None) -> Body:
        """One request; the decoded JSON answer, or KubeError."""
        headers = {**self._auth_headers(), "accept": "application/json"}
        content = None
        if body is not None:
            headers["content-type"] = content_type
            content = json.dumps(body)
        try:
            response = await self.http.request(method, url, content=content, headers=headers,
                                               params=params)
        except httpx.HTTPError as exc:
            raise KubeError(0, "Unreachable", f"{method} {url}: {exc or type(exc).__name__}"
                            ) from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code >= 400:
            raise KubeError(response.status_code, str(answer.get("reason") or "Error"),
                            str(answer.get("message") or response.text[:500]))
        return answer if isinstance(answer, dict) else {}

    async def get(self, kind: str, namespace: str, name: str) -> Body | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path(kind, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, kind: str, namespace: str | None = None,
                   label_selector: str | None = None) -> list[Body]:
        params = {"labelSelector": label_selector} if label_selector else None
        answer = await self.request("GET", path(kind, namespace), params=params)
        return list(answer.get("items") or [])

    async def create(self, body: Body) -> Body | None:
        """Create the object; None when one of that name already exists."""
        meta = body["metadata"]
        try:
            return await self.request("POST", path(body["kind"], meta["namespace"]), body=body)
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise

    async def apply(self, body: Body) -> Body:
        """Server-side apply: create the object or bring the fields we own to `body`."""
        meta = body["metadata"]
        return await self.request(
            "PATCH", path(body["kind"], meta["namespace"], meta["name"]), body=body,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
        )

    async def merge_patch(self, kind: str, namespace: str, name: str, patch: Body,
                          sub: str | None = None) -> Body:
        return await self.request("PATCH", path(kind, namespace, name, sub), body=patch,
                                  content_type="application/merge-patch+json")

    async def patch_status(self, kind: str, namespace: str, name: str, status: Body) -> Body:
        """Merge `status` into the object's status subresource (a null clears a field)."""
        return await self.merge_patch(kind, namespace, name, {"status": status}, sub="status")

    async def log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
        """A pod's log (its one container's), as text."""
        params = {"tailLines": str(tail_lines)} if tail_lines is not None else None
        url = path("Pod", namespace, pod, "log")
        try:
            response = await self.http.get(url, params=params, headers=self._auth_headers())
        except httpx.HTTPError as exc:
            raise KubeError(0, "Unreachable", f"GET {url}: {exc or type(exc).__name__}"
                            ) from None
        if response.status_code >= 400:
            raise KubeError(response.status_code, "Error", response.text[:500])
        return response.text

    async def delete(self, kind: str, namespace: str, name: str,
                     propagation: str | None = None) -> bool:
        """Delete the object (`propagation` "Background": its dependents too, as a Job's
        pods); False when it was already gone."""
        options = None if propagation is None else {
            "apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            await self.request("DELETE", path(kind, namespace, name), body=options)
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True
