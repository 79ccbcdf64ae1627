"""The label checks of hypercut_models.learnability: known answers from labelling rules whose
behaviour is fixed by construction (the classical motion rule, an appearance rule), on real
photographs panned in known directions, and hand-computed direction agreements."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hypercut_models.learnability import classical_side, direction_agreement, learnability, motion_direction, summary
from rb2v.cli import main as rb2v_main
from rb2v.io.images import bundled_photo

HYPERCUT_FIXTURES = Path(__file__).parent / "fixtures" / "hypercut"


def panned(photo: np.ndarray, angle_deg: float, speed: float = 2.0, size: int = 64) -> torch.Tensor:
    """(7, 3, size, size): a window moving ``speed`` px per frame in direction ``angle_deg`` over the photo
    (the scene moves the opposite way in the frames)."""
    h, w = photo.shape[:2]
    step = speed * np.array([np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))])
    frames = []
    for k in range(7):
        x0, y0 = np.array([w / 2 - size / 2, h / 2 - size / 2]) + (k - 3) * step
        warp = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]])
        frames.append(cv2.warpAffine(photo, warp, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    return torch.from_numpy(np.stack(frames).transpose(0, 3, 1, 2).copy())


def appearance_rule(frames: torch.Tensor) -> torch.Tensor:
    """Whether x_6 is brighter than x_0: what changes (what enters the frame), not how it moves."""
    return (frames[:, 6].double() - frames[:, 0].double()).mean(dim=(1, 2, 3))


@pytest.fixture(scope="module")
def sequences():
    photos = [bundled_photo(name) for name in ("astronaut", "coffee", "rocket")]
    return [panned(p, angle) for p in photos for angle in range(0, 360, 30)]


def test_motion_direction_is_the_scene_shift(sequences):
    # the window moves along 0, 30, ... degrees, so the scene shifts the opposite way by 6 * 2 px
    # (phase correlation of 64 px frames: within 6.3 degrees and 0.8 px measured on these photos)
    for i, seq in enumerate(sequences):
        angle, length = motion_direction(seq)
        assert length == pytest.approx(12.0, abs=1.0)
        assert abs((angle - 30 * (i % 12)) % 360 - 180) < 7.0


def test_direction_agreement_by_hand():
    angles = np.array([10.0, 70.0, 130.0, 190.0, 250.0, 310.0])  # every half-plane holds 3 consecutive ones
    assert direction_agreement(np.array([1, 1, 1, 0, 0, 0]), angles) == 1.0
    assert direction_agreement(np.array([0, 1, 1, 1, 0, 0]), angles) == 1.0
    assert direction_agreement(np.array([0, 0, 0, 1, 1, 1]), angles) == 1.0  # either polarity
    # one label for every direction: a direction rule splits them 3 / 3
    assert direction_agreement(np.zeros(6), angles) == 0.5
    # alternating labels: at best 4 of 6 agree with 3 consecutive directions on one side
    assert direction_agreement(np.array([1, 0, 1, 0, 1, 0]), angles) == pytest.approx(4 / 6)


def test_a_motion_rule_passes_every_check(sequences):
    # the classical ordering: the x_0 -> x_6 shift on a fixed axis, a label that follows the motion's direction
    result = learnability(classical_side, sequences, crop=40)
    assert result["sequences"] == result["moving_sequences"] == 36
    assert result["rotation_flip"] == 1.0
    assert result["direction_agreement"] == 1.0 and 0.5 < result["direction_chance"] < 0.8
    # a 40 px crop measures the shift less well: 4 % of the crops, all of sequences moving nearly
    # across the rule's axis, where the projected shift is smallest
    assert result["crop_agreement"] >= 0.9 and result["crop_all_four"] >= 0.8


def test_an_appearance_rule_never_flips(sequences):
    # a 180-degree turn does not change how bright the frames get: the side stays, the motion reverses
    result = learnability(appearance_rule, sequences, crop=40)
    assert result["rotation_flip"] == 0.0
    assert result["direction_agreement"] < 0.9
    assert abs(result["direction_agreement"] - result["direction_chance"]) < 0.15


def test_the_direction_prior_network_labels_by_the_motion(sequences):
    """The bundled HyperCUT trained with the direction prior (direction.pt) against the one trained
    with the paper's losses alone (pretrained.pt), on real photographs panned in 12 known
    directions. Measured: flips 97.2 vs 83.3 %, a direction rule 94.4 vs 77.8 % (shuffled: 63 %),
    the classical ordering's side 88.9 vs 61.1 % of the sequences."""
    from hypercut_models.learnability import checkpoint_side

    prior, paper = (
        checkpoint_side(HYPERCUT_FIXTURES / f"{n}.pt", torch.device("cpu")) for n in ("direction", "pretrained")
    )
    ours, theirs = learnability(prior, sequences, crop=40), learnability(paper, sequences, crop=40)
    assert ours["rotation_flip"] >= 0.9 and ours["direction_agreement"] >= 0.9
    assert ours["direction_agreement"] >= theirs["direction_agreement"] + 0.1
    assert ours["direction_agreement"] >= ours["direction_chance"] + 0.2
    with torch.no_grad():
        batch = torch.stack(sequences)
        same = (prior(batch) >= 0) == (classical_side(batch) >= 0)
    assert float(same.double().mean()) >= 0.8  # one convention: the classical ordering's


def test_still_sequences_have_no_direction(sequences):
    still = [seq[[3] * 7] for seq in sequences[:4]]  # one frame seven times: nothing moves
    result = learnability(classical_side, still, crop=40, total=len(still))
    assert result["moving_sequences"] == 0 and result["direction_agreement"] is None
    assert "direction: not measured" in summary({"split": "test", **result})


def test_eval_hypercut_learnability_json(tmp_path):
    from hypercut_models.synthetic import make_dataset

    manifest = make_dataset(
        tmp_path / "data",
        photos=("astronaut", "coffee"),
        test_subjects=("coffee", "street"),
        video_dirs=(HYPERCUT_FIXTURES / "street",),
        takes=1,
        samples=3,
        size=64,
        seed=2,
    )
    out = tmp_path / "eval.json"
    checkpoint = HYPERCUT_FIXTURES / "pretrained.pt"
    args = ["eval-hypercut", "--manifest", str(manifest), "--checkpoint", str(checkpoint), "--learnability"]
    assert rb2v_main([*args, "--json", str(out), "--workers", "0", "--device", "cpu"]) == 0
    checks = json.loads(out.read_text())["learnability"]
    assert checks["sequences"] == 6 and checks["split"] == "test"
    # 64 px frames: the 64 px corner crops are the whole frame
    assert checks["crop_agreement"] == 1.0 and checks["crop_all_four"] == 1.0
    assert checks["rotation_flip"] in {k / 6 for k in range(7)}
    assert 0.5 <= checks["direction_agreement"] <= 1.0 and 0 < checks["moving_sequences"] <= 6
