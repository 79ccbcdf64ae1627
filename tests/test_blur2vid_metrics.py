"""blur2vid pieces that need no training: pPSNR on hand-computed cases, the order labels, the
losses, R_hyp's gradient path, device placement, the network's shapes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from hypercut_models.blur2vid.data import BlurSequenceDataset
from hypercut_models.blur2vid.losses import Blur2VidLoss, naive_loss, order_invariant_loss
from hypercut_models.blur2vid.metrics import PPSNRAccumulator, frame_psnrs, motion_extent, pooled, ppsnr_sample
from hypercut_models.blur2vid.network import make_network
from hypercut_models.blur2vid.train import place
from hypercut_models.checkpoint import load_regularizer
from hypercut_models.losses import pair_scores
from hypercut_models.synthetic import make_dataset
from rb2v.errors import Rb2vError
from rb2v.io.images import bundled_photo
from rb2v.manifest import ORDER_KEY, read_manifest, write_manifest

PRETRAINED = Path(__file__).parent / "fixtures" / "hypercut" / "pretrained.pt"


def db(d: float) -> float:
    """PSNR of a constant error of d gray levels on 0-255 values."""
    return 20 * np.log10(255 / d)


def constant_frames(levels) -> np.ndarray:
    """(7, 4, 4, 3) frames in [0, 1], frame k uniformly at gray level levels[k] (0-255)."""
    return np.stack([np.full((4, 4, 3), v / 255.0) for v in levels])


TARGET_LEVELS = [40, 60, 80, 100, 120, 140, 160]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_ppsnr_reversed_prediction_scores_like_forward():
    target = constant_frames(TARGET_LEVELS)
    pred = constant_frames([v + 2 for v in TARGET_LEVELS])  # 2 levels off everywhere
    fwd, rev_used = ppsnr_sample(pred, target)
    assert not rev_used and np.allclose(fwd, db(2))
    back, rev_used = ppsnr_sample(pred[::-1], target)
    assert rev_used and np.array_equal(back, fwd)
    # a perfect prediction in either order is inf (the one PSNR of rb2v invents no ceiling)
    perfect, _ = ppsnr_sample(target[::-1], target)
    assert np.isinf(perfect).all()
    # the forward-only figure does not forgive the reversal
    assert frame_psnrs(pred[::-1], target)[0] == pytest.approx(db(122))


def test_ppsnr_scores_the_network_output_as_the_official_validation_does():
    """The official ``calculate_PSNR`` scores the output tensors on 0-255 values, neither rounded to 8 bits
    nor clipped; rb2v rounded and clipped them first (an outside check measured 0.07 dB on p̄PSNR, up to
    0.43 dB on one frame). 0.3 levels off rounded to no error (inf); 0.02 over white was clipped away."""
    target = constant_frames(TARGET_LEVELS)
    fwd, _ = ppsnr_sample(target + 0.3 / 255, target)
    np.testing.assert_allclose(fwd, db(0.3))
    white = np.ones((7, 4, 4, 3))
    over, _ = ppsnr_sample(white + 0.02, white)
    np.testing.assert_allclose(over, db(0.02 * 255))
    acc = PPSNRAccumulator(ssim=False)
    acc.add(target + 0.3 / 255, target, blur=target[3])
    np.testing.assert_allclose(acc.result()["ppsnr"], db(0.3))


def test_pssim_takes_its_own_better_direction():
    """The official README takes "the maximum value from the results of both forward and backward predictions
    for each metric" (its code has no SSIM): a sample whose mean PSNR is higher reversed (by 0.03 dB) and
    whose mean SSIM is higher as predicted (by 0.009) has the forward SSIM as its pSSIM; rb2v took pPSNR's."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a, b, c = (128 + s * rng.standard_normal((24, 24, 3)) for s in (5, 20, 20))
    target = np.stack([a] + [c] * 5 + [b]) / 255
    pred = np.stack([128 - 0.5 * (a - 128)] + [c + 1] * 5 + [128 + 0.7 * (0.3 * (a - 128) + 0.3 * (b - 128))]) / 255

    def mean_ssim(frames):  # on 0-255 values, as the metric scores them
        pairs = zip(frames * 255, target * 255)
        return np.mean([structural_similarity(x, y, data_range=255.0, channel_axis=2) for x, y in pairs])

    forward, backward = mean_ssim(pred), mean_ssim(pred[::-1])
    _, reversed_by_psnr = ppsnr_sample(pred, target)
    assert reversed_by_psnr and forward > backward + 0.005, (forward, backward)
    acc = PPSNRAccumulator(ssim=True)
    acc.add(pred, target)
    assert acc.result()["pssim_mean"] == pytest.approx(forward, abs=1e-12)


def test_ppsnr_picks_one_direction_per_sample_not_per_frame():
    """x0 and x6 swapped, every frame 1 level off: the forward direction has the higher mean
    (5 frames at 1 level off), so the official pPSNR keeps it for all 7 frames, including x0 and x6
    at 121 and 119 levels off; a per-frame max would take x0 and x6 from the reverse (1 level off)."""
    target = constant_frames(TARGET_LEVELS)
    pred_levels = [160 + 1, 61, 81, 101, 121, 141, 40 + 1]
    pred = constant_frames(pred_levels)
    chosen, rev_used = ppsnr_sample(pred, target)
    expected = [db(121), db(1), db(1), db(1), db(1), db(1), db(119)]
    assert not rev_used
    np.testing.assert_allclose(chosen, expected)
    reverse_levels = pred_levels[::-1]  # [41, 141, 121, 101, 81, 61, 161]
    reverse = [db(abs(p - t)) for p, t in zip(reverse_levels, TARGET_LEVELS)]  # 1, 81, 41, 1, 41, 81, 1
    np.testing.assert_allclose(frame_psnrs(pred[::-1], target), reverse)
    assert np.mean(expected) > np.mean(reverse)
    per_frame_max = np.maximum(expected, reverse)
    assert per_frame_max[0] == pytest.approx(db(1)) and per_frame_max.mean() > np.mean(chosen) + 10

    acc = PPSNRAccumulator(ssim=True)
    acc.add(pred, target, blur=np.full((4, 4, 3), 100 / 255.0), subject="b")
    acc.add(pred[::-1], target, blur=np.full((4, 4, 3), 100 / 255.0), subject="b")
    out = acc.result()
    np.testing.assert_allclose(out["ppsnr"], expected)  # the reversed copy scores the same
    assert out["ppsnr_mean"] == pytest.approx(np.mean(expected)) and out["reversed_fraction"] == 0.5
    np.testing.assert_allclose(out["psnr_forward"], (np.array(expected) + reverse) / 2)
    floor = [db(abs(100 - t)) if t != 100 else np.inf for t in TARGET_LEVELS]
    np.testing.assert_allclose(out["baseline_ppsnr"], floor)

    # per subject: a third sample (the targets as predicted: every frame 1 level off) of subject "a"
    acc.add(constant_frames([v + 1 for v in TARGET_LEVELS]), target, subject="a")
    by = acc.result()["by_subject"]
    assert list(by) == ["a", "b"] and by["a"]["samples"] == 1 and by["b"]["samples"] == 2
    np.testing.assert_allclose(by["a"]["ppsnr"], [db(1)] * 7)
    np.testing.assert_allclose(by["b"]["ppsnr"], expected)
    whole = pooled(by, ["a", "b"])  # pooled subjects = the figures over their samples
    np.testing.assert_allclose(whole["ppsnr"], (np.array(expected) * 2 + db(1)) / 3)
    np.testing.assert_allclose(whole["ppsnr"], acc.result()["ppsnr"])
    assert whole["samples"] == 3 and "baseline_ppsnr" not in whole  # "a" came without its blurry input
    assert "baseline_ppsnr" not in acc.result() and "baseline_ppsnr" not in by["a"]
    assert "motion_true_px" not in acc.result()  # 4 px frames: no motion figure rather than a wrong one
    np.testing.assert_allclose(pooled(by, ["b"])["baseline_ppsnr"], floor)


def panned(dx: int, dy: int, size: int = 96, still_object: bool = False) -> np.ndarray:
    """(7, size, size, 3) crops of a photo, frame k's window moved by (k dx, k dy) px / 6 (whole pixels
    between x0 and x6); with ``still_object`` the window stays and a 16 px square crosses it instead."""
    photo = bundled_photo("astronaut")
    frames = []
    for k in range(7):
        x, y = 100 + round(k * dx / 6), 100 + round(k * dy / 6)
        if still_object:
            frame = photo[100 : 100 + size, 100 : 100 + size].copy()
            frame[40:56, 10 + 8 * k : 26 + 8 * k] = 1.0
        else:
            frame = photo[y : y + size, x : x + size]
        frames.append(frame)
    return np.stack(frames)


def test_motion_extent_measures_how_far_the_picture_moves():
    # the window moves by (dx, dy): the picture by (-dx, -dy); the flow's median length is the shift
    assert motion_extent(panned(6, -3)) == pytest.approx(np.hypot(6, 3), abs=0.05)
    assert motion_extent(panned(0, 12)) == pytest.approx(12.0, abs=0.05)
    assert motion_extent(panned(0, 0)) == pytest.approx(0.0, abs=0.01)
    # a still camera with an object crossing a small part of the picture: the picture does not move
    assert motion_extent(panned(0, 0, still_object=True)) < 0.05
    assert np.isnan(motion_extent(constant_frames(TARGET_LEVELS)))  # 4 px frames: too small to measure

    # a prediction that hedges (all frames the middle one) or one that moves a still picture
    acc = PPSNRAccumulator(ssim=False)
    moving = panned(6, 0)
    acc.add(np.repeat(moving[3:4], 7, 0), moving, subject="pan")
    still = panned(0, 0)
    acc.add(panned(2, 0), still, subject="still")
    by = acc.result()["by_subject"]
    assert by["pan"]["motion_true_px"] == pytest.approx(6.0, abs=0.05) and by["pan"]["motion_predicted_px"] < 0.01
    assert by["still"]["motion_true_px"] < 0.01 and by["still"]["motion_predicted_px"] == pytest.approx(2.0, abs=0.05)
    whole = acc.result()
    assert whole["motion_true_px"] == pytest.approx(pooled(by, ["pan", "still"])["motion_true_px"])
    assert whole["motion_predicted_px"] == pytest.approx((by["pan"]["motion_predicted_px"] + 2.0) / 2, abs=0.03)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """A tiny manifest (2 photos x 2 samples, 40x40) with samples 0 and 3 labelled "reverse"."""
    out = tmp_path_factory.mktemp("blur2vid_labels")
    manifest = make_dataset(out, photos=("astronaut", "coffee"), takes=1, samples=2, size=40, seed=4)
    df = read_manifest(manifest)
    df["order"] = ["reverse", "ignore", "ignore", "reverse"]
    write_manifest(manifest, df, {ORDER_KEY: {"checkpoint": "test"}})
    return manifest


def test_reverse_label_reverses_the_targets(labelled):
    stored = BlurSequenceDataset(labelled, None)
    ordered = BlurSequenceDataset(labelled, None, ordered=True)
    labels = ordered.rows["order"].tolist()
    assert labels.count("reverse") == 2
    for i, label in enumerate(labels):
        blur_a, frames_a, _ = stored[i]
        blur_b, frames_b, _ = ordered[i]
        assert torch.equal(blur_a, blur_b)
        expected = frames_a.flip(0) if label == "reverse" else frames_a
        assert torch.equal(frames_b, expected), (i, label)
        assert not torch.equal(frames_a[0], frames_a[6])  # the reversal is visible
    # the hypercut loss's reconstruction term follows the labelled order
    pred = torch.stack([stored[i][1] for i in range(4)])  # the stored order, exactly
    targets = torch.stack([ordered[i][1] for i in range(4)])
    loss = Blur2VidLoss("naive")
    assert float(loss(pred, torch.stack([stored[i][1] for i in range(4)]))["recon"]) < 2e-3
    assert float(loss(pred, targets)["recon"]) > 0.01


def test_manifest_without_computed_labels_is_refused(labelled):
    df = read_manifest(labelled)
    df["order"] = "ignore"
    fresh = labelled.parent / "unlabelled.parquet"
    write_manifest(fresh, df)  # no ORDER_KEY record, every label the default
    with pytest.raises(Rb2vError, match="never computed"):
        BlurSequenceDataset(fresh, "train", ordered=True)
    BlurSequenceDataset(fresh, "train")  # the other losses do not need labels


def test_order_invariant_loss_ignores_the_direction_naive_does_not():
    torch.manual_seed(0)
    target = torch.rand(2, 7, 3, 8, 8)
    pred = target + 0.05 * torch.randn_like(target)
    oi = order_invariant_loss(pred, target)
    assert torch.allclose(order_invariant_loss(pred.flip(1), target), oi)
    assert torch.allclose(order_invariant_loss(pred, target.flip(1)), oi)
    assert naive_loss(pred.flip(1), target) > 3 * naive_loss(pred, target)
    # the middle frame has its own term: a wrong x_3 alone raises the loss
    wrong_middle = target.clone()
    wrong_middle[:, 3] = 1 - wrong_middle[:, 3]
    assert order_invariant_loss(wrong_middle, target) > order_invariant_loss(target, target) + 0.02


def test_rhyp_gradient_reaches_the_blur2vid_net_never_the_hypercut_weights():
    torch.manual_seed(0)
    regularizer = load_regularizer(PRETRAINED)
    frozen = {k: v.clone() for k, v in regularizer.net.state_dict().items()}
    net = make_network("small")
    criterion = Blur2VidLoss("hypercut", regularizer, alpha=1.0)
    criterion.train()
    assert not regularizer.net.training  # frozen: stays in evaluation mode
    blur = torch.rand(2, 3, 40, 40)
    out = criterion(net(blur), torch.rand(2, 7, 3, 40, 40))
    out["hyp"].backward()
    assert all(p.grad is None for p in regularizer.net.parameters())
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    # a few steps on R_hyp alone push the predicted (x_0, x_6) to the negative side, the side of
    # the labelled targets; the HyperCUT weights never move
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def score() -> float:
        with torch.no_grad():
            return float(pair_scores(regularizer.net, regularizer.plane, net(blur), with_reverse=False)[0][:, 0].mean())

    before = score()
    for _ in range(5):
        opt.zero_grad()
        criterion(net(blur), torch.rand(2, 7, 3, 40, 40))["hyp"].backward()
        opt.step()
    assert score() < before - 0.5
    for k, v in regularizer.net.state_dict().items():
        assert torch.equal(v, frozen[k]), k


def test_network_shapes_and_initial_floor():
    torch.manual_seed(0)
    for size in ("small", "base"):
        net = make_network(size)
        for h, w in ((37, 53), (64, 64), (9, 130)):
            assert net(torch.rand(1, 3, h, w)).shape == (1, 7, 3, h, w)
    net = make_network("small")
    blur = torch.rand(2, 3, 32, 32)
    # a fresh network starts near the floor: every frame close to the blurry input
    with torch.no_grad():
        assert float((net(blur) - blur[:, None]).abs().mean()) < 0.05


def test_device_placement_rule_on_cpu():
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    net = make_network("small")
    blur = torch.rand(2, 3, 24, 24)
    plain = net(blur)
    placed = place(net, cpu)  # channels-last by default, on the CPU too (faster there)
    conv = placed.head[0].weight
    assert conv.device == cpu and conv.is_contiguous(memory_format=torch.channels_last)
    x = place(blur, cpu)
    assert x.is_contiguous(memory_format=torch.channels_last) and not blur.is_contiguous(
        memory_format=torch.channels_last
    )
    torch.testing.assert_close(placed(x), plain, rtol=1e-4, atol=1e-5)  # the same numbers
    frames = place(torch.rand(2, 7, 3, 4, 4), cpu)  # 5-D: only moved
    assert frames.is_contiguous()
    hypercut_input = place(x, cpu, channels_last=False)  # the HyperCUT network's rule on the CPU
    assert hypercut_input.is_contiguous() and not hypercut_input.is_contiguous(memory_format=torch.channels_last)
    # mixed precision of a training step: bfloat16 only where the CPU computes it natively
    from rb2v.device import native_cpu_bfloat16, training_autocast

    assert training_autocast(cpu) == (torch.bfloat16 if native_cpu_bfloat16() else None)
    assert training_autocast(cpu, "float32") is None and training_autocast(cpu, "cuda-only") is None
    assert training_autocast(torch.device("cuda"), "cuda-only") is torch.float16  # runs saved before "auto"
    assert training_autocast(torch.device("cuda"), "auto") is torch.float16  # decided without a GPU
    with pytest.raises(Rb2vError, match="training precision"):
        training_autocast(cpu, "float16")
