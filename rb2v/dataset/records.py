"""What a build records of its work, read by the build, ``rb2v synth-reds`` and the report: each take's
summary (``build.json``), the rejection reasons' meanings and the failed samples' messages
(``rejects.parquet``). Nothing heavy is imported here: ``rb2v report`` reads them without the build stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TakeSummary:
    take: str
    accepted: int = 0
    rejected: int = 0
    skipped: bool = False  # already built with the same inputs and settings
    units: int = 1  # units of work (a take's chunks) summed here, and of those, already built
    units_built_before: int = 0
    seconds: float = 0.0
    reasons: dict = field(default_factory=dict)
    stage_seconds: dict = field(default_factory=dict)  # where the time went (for rb2v bench build)
    time_offset_s: float = 0.0
    sync_method: str = ""
    # blurry frames whose start the take's clock chose between two near-tied neighbours (search.clock_prior_db)
    clock_moved: int = 0

    @classmethod
    def merge(cls, parts: list[TakeSummary]) -> TakeSummary:
        """One take's summary from its chunks' summaries."""
        first = parts[0]
        total = cls(first.take, time_offset_s=first.time_offset_s, sync_method=first.sync_method)
        total.skipped = all(p.skipped for p in parts)
        total.units = sum(p.units for p in parts)
        total.units_built_before = sum(p.units_built_before for p in parts)
        for p in parts:
            total.accepted += p.accepted
            total.rejected += p.rejected
            total.seconds += p.seconds
            total.clock_moved += p.clock_moved
            for d, src in ((total.reasons, p.reasons), (total.stage_seconds, p.stage_seconds)):
                for k, v in src.items():
                    d[k] = d.get(k, 0) + v
        return total


STAGE_FAILED = "stage_failed"


def stage_failures(reasons) -> dict[str, int]:
    """The messages of the samples whose stage raised (an unreadable frame, a bug), each with how many
    samples it cost, from their reasons (``stage._failure``'s)."""
    out: dict[str, int] = {}
    for reason in reasons:
        for part in reason.split(";"):
            name, _, detail = part.partition(": ")
            if name == STAGE_FAILED:
                out[detail] = out.get(detail, 0) + 1
    return out


# What each rejection reason says of its blurry frames (read as "N blurry frames <meaning>"): the summary's
# hints and the report's table. A reason recorded with a detail ("stage_failed: …") is named before its colon.
REJECT_REASONS = {
    "low_psnr": "fit no start's synthetic blur to qc.min_psnr: the sharp frames do not show what the blurry frame "
    "shows (the views disagree, the scene changed between the exposures, or much of the frame is clipped)",
    "ambiguous": "fit two starts almost equally well (a margin under qc.min_margin dB): too little motion or "
    "texture to place the exposure",
    "edge_of_range": "fit best at the edge of the searched starts (search.radius steps around where the "
    "alignment's clock puts them, or the sharp recording's ends where the clock does not put them): the true "
    "start may lie beyond",
    "static": "show almost no change over their 7 frames (under qc.min_motion): nothing to order or deblur",
    "misregistered": "sit off their sharp frames: the views moved against each other during the take (a knocked "
    "rig, a loose mount, image stabilisation), or a take that kept its calibration take's homography was bumped "
    "after it (lower align.max_calibration_shift_px in the rig file and align again), or its lenses distort and no "
    "calibration take undistorted them (its alignment.json's lens is null: film a board, RAW/calibration/<name>/"
    "board.toml, and name it in take.toml), or parts of the view lie at other depths on a rig whose cameras' centres "
    "differ (parallax: one homography aligns one depth; its alignment.json's calibration_still_gap_px and note say "
    "how far a still background sits from the moving subject)",
    "off_clock": "match sharp frames over qc.max_clock_steps from where the alignment's clock puts them: a view "
    "moved along the motion (a knocked rig), or, where most of a take's are, its clock is wrong (its "
    "alignment.json's time_offset_s and exposure; align it again, or raise qc.max_clock_steps), or the blur "
    "camera's exposure changed during the take (align fits one exposure per take)",
    "moved": "passed the per-frame checks but lie where, from some frame of their take on, most blurry frames were "
    "rejected misregistered or off_clock or measured over qc.max_shift_px (at least qc.move_min_frames of them): a "
    "view moved there, so theirs sit off too, by less than those checks see or along the motion (taken for time); "
    "or a still background at another depth than the subject sits off throughout (parallax: alignment.json's "
    "calibration_still_gap_px)",
    "knocked": "lie from where align saw the views move against each other and stay moved (a knocked rig, a loose "
    "mount): the first of the frames it compared whose matches with the sharp frames sat apart from the take's "
    "others, with every later one apart too, or the frame after the one it compared just before (alignment.json's "
    "frames_apart_px, frames_checked)",
    "out_of_range": "lie where the sharp recording has too few frames around them (a take's first or last frames)",
    "stage_failed": "failed in a stage: the build named each message and exited 1, rejects.parquet's reason "
    "gives it (--debug prints a bug's traceback); the take's other frames went on, and a re-run redoes these",
}
