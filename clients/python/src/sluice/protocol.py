"""The worker protocol's HTTP calls (docs/WORKER-PROTOCOL.md): register, claim, heartbeat,
outcomes, release, deregister. Each role of the worker holds its own `WorkerAPI`, so a long-poll
claim never delays a heartbeat."""
from __future__ import annotations

import json
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
        content = _encode(body)  # a body that cannot be encoded raises here, before anything is sent
        try:
            response = self._http.request(method, self._base + path, content=content, timeout=wait + SLACK,
                                          headers={"Content-Type": "application/json"})
        except httpx.TransportError as error:
            raise SluiceError(0, "unreachable" if not isinstance(error, httpx.TimeoutException) else "timeout",
                              f"no answer from the Sluice server at {self.url}: {type(error).__name__}: {error}") from error
        return _answer(response)

    def register(self, description: Dict[str, Any]) -> Dict[str, Any]:
        return cast(Dict[str, Any], self._post("", description, method="PUT"))

    #: The most leases one heartbeat call carries (the server takes more, but within its --max-body).
    HEARTBEAT_LEASES = 1000
    #: The most bytes one heartbeat call's body should take: a sixteenth of the server's default
    #: --max-body (1 MiB), about a thousand leases.
    HEARTBEAT_BYTES = 64 * 1024

    def heartbeat(self, description: Dict[str, Any], leases: List[Dict[str, Any]]) -> Dict[str, Any]:
        """Refreshes the registration (`description`) and renews `leases`, in calls of at most
        `HEARTBEAT_LEASES` leases and about `HEARTBEAT_BYTES`: a worker holding thousands of leases (a
        large prefetch, many slots) must not send one body the server refuses as too large, which
        would renew none. The first call carries `description`; the others only their leases (the
        server keeps what the first registered). A call refused as too large all the same (a server
        with a smaller --max-body) is split in halves. The answer is the first call's, with the
        statuses of every call's leases."""
        budget = self.HEARTBEAT_BYTES - len(_encode({"leases": []}))
        chunks = _chunks(leases, self.HEARTBEAT_LEASES, budget - len(_encode(description)), budget)
        answer = self._beat(description, chunks[0])
        for chunk in chunks[1:]:
            answer["leases"] += self._beat({}, chunk)["leases"]
        return answer

    def _beat(self, description: Dict[str, Any], leases: List[Dict[str, Any]]) -> Dict[str, Any]:
        """One heartbeat call, or several when the server refuses its body as too large."""
        try:
            answer = self._post("/heartbeat", dict(description, leases=leases))
        except SluiceError as error:
            if error.status != 413 or len(leases) < 2:
                raise
            half = len(leases) // 2
            first = self._beat(description, leases[:half])
            first["leases"] += self._beat({}, leases[half:])["leases"]
            return first
        if not isinstance(answer, dict) or not isinstance(answer.get("leases", []), list):
            raise ValueError(f"the heartbeat's answer is not a JSON object with a list of leases: {answer!r:.200}")
        answer["leases"] = list(answer.get("leases", []))
        return answer

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


def _encode(body: Any) -> bytes:
    """`body` as compact JSON (no spaces: a body within the server's --max-body carries more), as
    every call sends it. NaN and Infinity are not JSON: refused here."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _chunks(items: List[Dict[str, Any]], count: int, first_budget: int, budget: int) -> List[List[Dict[str, Any]]]:
    """`items` in lists of at most `count` items whose JSON takes at most `budget` bytes
    (`first_budget` for the first list), each holding one item at least; `[[]]` for none."""
    chunks: List[List[Dict[str, Any]]] = [[]]
    left = first_budget
    for item in items:
        size = len(_encode(item)) + 1
        if chunks[-1] and (len(chunks[-1]) >= count or size > left):
            chunks.append([])
            left = budget
        chunks[-1].append(item)
        left -= size
    return chunks
