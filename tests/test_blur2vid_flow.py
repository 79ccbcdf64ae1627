"""blur2vid's motion: the path head, its global context, the flow targets of the ground truth and the flow term."""

import cv2
import numpy as np
import pytest
import torch

from hypercut_models.blur2vid.data import BlurSequenceDataset, flow_targets
from hypercut_models.blur2vid.losses import Blur2VidLoss
from hypercut_models.blur2vid.network import Blur2VidNet, make_network
from hypercut_models.synthetic import make_dataset
from rb2v.io.images import bundled_photo
from rb2v.manifest import ORDER_KEY, read_manifest, write_manifest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pan(speed: float, size: int = 48) -> np.ndarray:
    """(7, size, size, 3) frames of a photo sliding left by ``speed`` px per frame: x_k(p) = I(p + speed * k)."""
    photo = bundled_photo("astronaut")[100 : 100 + size, 150 : 150 + size + 40].astype(np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP  # frame(x, y) = photo(x + 8 + speed * k, y)
    return np.stack([cv2.warpAffine(photo, np.float32([[1, 0, 8 + speed * k], [0, 1, 0]]), (size, size), flags=flags)
                     for k in range(7)])  # fmt: skip


def test_flow_targets_recover_a_known_pan():
    frames = pan(1.5)
    flows = flow_targets(frames)
    assert flows.shape == (7, 2, 48, 48) and not flows[3].any()
    inner = np.s_[8:-8, 8:-8]
    for k in range(7):
        # x_k(p) = x_3(p + 1.5 (k - 3)): sampling the middle frame there gives frame k
        assert abs(np.median(flows[k, 0][inner]) - 1.5 * (k - 3)) < 0.15, k
        assert abs(np.median(flows[k, 1][inner])) < 0.15, k


def test_path_head_gives_each_pixel_one_path_through_the_exposure():
    torch.manual_seed(0)
    net = make_network("small")
    assert net.config()["motion"] == "path"
    with torch.no_grad():
        net.tail.weight[: net.flow_channels].normal_(std=0.05)  # a net that moves
        frames, flow = net(torch.rand(2, 3, 24, 40), with_flow=True)
    assert frames.shape == (2, 7, 3, 24, 40) and flow.shape == (2, 7, 2, 24, 40)
    assert float(flow.abs().mean()) > 0.05
    assert torch.equal(flow[:, 3], torch.zeros_like(flow[:, 3]))
    # flow_k = t_k v + t_k^2 a with t_k = (k - 3) / 3: the odd part scales with t_k
    odd = (flow - flow.flip(1)) / 2
    torch.testing.assert_close(odd[:, 6], 3 * odd[:, 4], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(odd[:, 6], 1.5 * odd[:, 5], rtol=1e-4, atol=1e-5)
    # and the even part with t_k^2
    even = (flow + flow.flip(1)) / 2
    torch.testing.assert_close(even[:, 6], 9 * even[:, 4], rtol=1e-4, atol=1e-5)
    # a network saved before the path head (no "motion" in its config) still builds, with 14 flow channels
    old = Blur2VidNet(widths=(24, 48, 96), blocks=1, warp=True)
    assert old.motion == "frames" and old.tail.out_channels == 14 + 21


def test_flow_term_trains_the_flows_toward_the_targets_in_the_loss_order():
    torch.manual_seed(0)
    target_flow = torch.from_numpy(flow_targets(pan(1.0, 32)))[None]
    frames = torch.rand(1, 7, 3, 32, 32)
    for kind in ("naive", "order-invariant"):
        loss = Blur2VidLoss(kind, flow_weight=0.01)
        right = loss(frames, frames, target_flow, target_flow)
        wrong = loss(frames, frames, -target_flow, target_flow)
        assert float(right["flow"]) < 2e-3 and float(right["recon"]) < 2e-3
        if kind == "naive":  # the time-reversed motion is wrong for the per-frame term
            assert float(wrong["flow"]) > 1.0
        else:  # and the same for the order-invariant one
            assert float(wrong["flow"]) < 2e-3
        assert float(right["total"]) == pytest.approx(float(right["recon"] + 0.01 * right["flow"]), abs=1e-7)
    # the flow term's gradient reaches the network's flow outputs
    net = make_network("small")
    pred, flow = net(frames[:, 3], with_flow=True)
    Blur2VidLoss("naive", flow_weight=0.01)(pred, frames, flow, target_flow)["flow"].backward()
    assert float(net.tail.weight.grad[: net.flow_channels].abs().sum()) > 0
    assert float(Blur2VidLoss("naive")(pred.detach(), frames, flow.detach(), target_flow)["flow"]) == 0


def test_reverse_label_reverses_the_flow_targets(tmp_path):
    manifest = make_dataset(tmp_path, photos=("astronaut",), takes=1, samples=2, size=40, seed=4)
    df = read_manifest(manifest)
    df["order"] = ["reverse", "ignore"]
    write_manifest(manifest, df, {ORDER_KEY: {"checkpoint": "test"}})
    stored = BlurSequenceDataset(manifest, None, flows=True)
    ordered = BlurSequenceDataset(manifest, None, ordered=True, flows=True)
    for i, label in enumerate(["reverse", "ignore"]):
        _, frames_a, _, flows_a = stored[i]
        _, frames_b, _, flows_b = ordered[i]
        np.testing.assert_array_equal(flows_b.numpy(), flow_targets(frames_b.numpy().transpose(0, 2, 3, 1)))
        assert float(flows_a[0].abs().mean()) > 0.5  # the samples move
        # x_3 stays the middle frame, so the reversed frames' targets are the stored ones reversed
        assert torch.equal(flows_b, flows_a.flip(0) if label == "reverse" else flows_a), (i, label)


def test_a_run_saved_before_the_flow_term_resumes_without_it(tmp_path):
    from hypercut_models.blur2vid.checkpoint import save_checkpoint
    from hypercut_models.blur2vid.train import Blur2VidSettings, _resolve

    old = Blur2VidSettings(manifest="m.parquet", out=str(tmp_path), epochs=3).__dict__.copy()
    del old["flow_weight"], old["precision"]  # what settings.json and last.pt held before they existed
    save_checkpoint(tmp_path / "last.pt", {"settings": old, "epoch": 1})
    resumed, _ = _resolve(Blur2VidSettings(manifest="m.parquet", out=str(tmp_path)), resume=True)
    assert resumed.flow_weight == 0 and resumed.precision == "cuda-only" and resumed.epochs == 3
    new = Blur2VidSettings(manifest="m.parquet", out="new")  # a new run has both
    assert new.flow_weight == 0.01 and new.precision == "auto"


def test_global_context_lets_every_pixel_see_the_whole_image():
    """A pixel's motion depends on the whole picture (a still street's sky moves only if the picture
    does), not only on the ~70 px the convolutions see; networks saved without it still build."""
    torch.manual_seed(0)
    blur = torch.rand(1, 3, 192, 192)
    far = blur.clone()
    far[..., :, :64] = 1 - far[..., :, :64]  # the left third changed
    moved = {}
    for context in (True, False):
        net = Blur2VidNet(widths=(24, 48, 96), blocks=1, warp=True, motion="path", context=context).eval()
        with torch.no_grad():
            net.tail.weight.normal_(std=0.05)
            a, b = net(blur, with_flow=True)[1], net(far, with_flow=True)[1]
        moved[context] = float((a - b)[..., -24:].abs().max())  # 104+ px away, on the right
    assert moved[True] > 1e-4 and moved[False] == 0.0  # exactly: without it the right never sees the left
    assert make_network("small").config()["context"] and not Blur2VidNet(warp=True, motion="path").context
