"""``rb2v verify``: every object in the mirror's ``SHA256SUMS`` exists with the listed sha256
(so the right size), and nothing else is there. Reads every byte: the check does not trust
sizes, ETags or timestamps."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Rb2vError
from .checksums import SUMS_NAME
from .mirror import MirrorError, open_mirror
from .parallel import run_all

DEFAULT_JOBS = 8


@dataclass
class VerifyReport:
    url: str
    complete: bool = True  # the checksum list exists
    listed: int = 0
    bytes_checked: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: dict[str, str] = field(default_factory=dict)  # key -> what is wrong
    unlisted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.complete and not (self.missing or self.corrupt or self.unlisted)

    def lines(self) -> list[str]:
        out = (
            []
            if self.complete
            else [f"incomplete: {self.url} has no {SUMS_NAME} (publish interrupted or never finished)"]
        )
        out += [f"missing: {k}" for k in self.missing]
        out += [f"corrupt: {k} ({why})" for k, why in sorted(self.corrupt.items())]
        out += [f"unlisted: {k}" for k in self.unlisted]
        return out


def verify(url: str, endpoint_url: str | None = None, jobs: int = DEFAULT_JOBS) -> VerifyReport:
    mirror = open_mirror(url, endpoint_url)
    remote = mirror.list_objects()
    if not remote:
        raise Rb2vError(f"{mirror.url}: nothing published there")
    report = VerifyReport(url=mirror.url)
    sums = mirror.read_sums() if SUMS_NAME in remote else None
    if sums is None:
        report.complete = False
        return report
    report.listed = len(sums)
    report.unlisted = sorted(k for k in remote if k not in sums and k != SUMS_NAME)
    report.missing = sorted(k for k in sums if k not in remote)
    present = sorted(k for k in sums if k in remote)

    def check(key: str) -> str | None:
        try:
            got = mirror.sha256(key)
        except MirrorError as e:
            return f"unreadable: {e}"
        return (
            None
            if got == sums[key]
            else f"sha256 {got[:12]}… expected {sums[key][:12]}…, size {remote[key].size} bytes"
        )

    results = run_all(jobs, check, present, "verifying", weights={k: remote[k].size for k in present})
    report.corrupt = {k: why for k, why in results.items() if why}
    report.bytes_checked = sum(remote[k].size for k in present)
    return report
