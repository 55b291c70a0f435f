"""The worker protocol's HTTP calls (docs/WORKER-PROTOCOL.md): register, claim, heartbeat,
outcomes, release, deregister. Each role of the worker holds its own `WorkerAPI`, so a long-poll
claim never delays a heartbeat."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, cast
from urllib.parse import quote

import httpx

from .client import SLACK, _answer, _headers
from .errors import SluiceError


class WorkerAPI:
    """The protocol's calls for worker `worker_id` on the server at `url`."""

    def __init__(self, url: str, token: Optional[str], worker_id: str) -> None:
        self.url = url
        self._base = f"/v1/workers/{quote(worker_id, safe=':')}"
        self._http = httpx.Client(base_url=url, headers=_headers(token), timeout=SLACK)

    def _post(self, path: str, body: Dict[str, Any], method: str = "POST", wait: float = 0.0) -> Any:
        try:
            response = self._http.request(method, self._base + path, json=body, timeout=wait + SLACK)
        except httpx.TransportError as error:
            raise SluiceError(0, "unreachable" if not isinstance(error, httpx.TimeoutException) else "timeout",
                              f"no answer from the Sluice server at {self.url}: {type(error).__name__}: {error}") from error
        return _answer(response)

    def register(self, description: Dict[str, Any]) -> Dict[str, Any]:
        return cast(Dict[str, Any], self._post("", description, method="PUT"))

    def heartbeat(self, description: Dict[str, Any], leases: List[Dict[str, Any]]) -> Dict[str, Any]:
        return cast(Dict[str, Any], self._post("/heartbeat", dict(description, leases=leases)))

    def claim(self, pools: List[Dict[str, Any]], wait: float) -> List[Dict[str, Any]]:
        return cast(List[Dict[str, Any]], self._post("/claim", {"pools": pools, "wait": wait}, wait=wait)["tasks"])

    def outcomes(self, outcomes: List[Dict[str, Any]], refill: List[Dict[str, Any]]) -> Dict[str, Any]:
        """Reports `outcomes`; with `refill` (a claim's pools) the answer's `tasks` fill the freed slots."""
        body: Dict[str, Any] = {"outcomes": outcomes}
        if refill:
            body["claim"] = {"pools": refill}
        return cast(Dict[str, Any], self._post("/outcomes", body))

    #: The most leases one release may name (the server's batch limit).
    RELEASE_BATCH = 1000

    def release(self, leases: List[Dict[str, Any]]) -> None:
        """Hands the tasks back, in calls of at most `RELEASE_BATCH` leases: a pool of thousands
        stopping hands back more than one call may carry."""
        for start in range(0, len(leases), self.RELEASE_BATCH):
            self._post("/release", {"leases": leases[start:start + self.RELEASE_BATCH]})

    def deregister(self) -> None:
        try:
            self._http.delete(self._base)
        except httpx.TransportError:
            pass  # the server forgets a silent worker after 15 s anyway

    def close(self) -> None:
        self._http.close()
