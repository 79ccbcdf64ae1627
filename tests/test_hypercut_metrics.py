"""HyperCUT metrics, hyperplane, network and losses on hand-made inputs with known answers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hypercut_models.losses import (
    HyperCUTLoss,
    Hyperplane,
    HyperplaneRegularizer,
    direction_loss,
    escape_loss,
    order_loss,
    pair_scores,
    same_side_loss,
)
from hypercut_models.metrics import ordering_metrics, sides
from hypercut_models.network import HyperCUTNet


def test_metrics_on_hand_made_scores():
    fwd = np.array(
        [
            [-1.0, -2.0, -0.5],  # all negative: 3 same-side couples, con@3
            [1.0, -2.0, 3.0],  # one off: only (0-6, 2-4) agree
            [0.0, 2.0, 1.0],  # 0 counts as positive: all positive
            [-1.0, -1.0, 4.0],
        ]
    )  # (0-6, 1-5) agree
    rev = np.array(
        [
            [1.0, 2.0, 0.5],  # 3 hits
            [-1.0, -2.0, -3.0],  # hits on 0-6 and 2-4
            [-0.1, 2.0, -1.0],  # hits on 0-6 and 2-4 (0 vs -0.1 differ)
            [-1.0, 1.0, -4.0],
        ]
    )  # hits on 1-5 and 2-4
    m = ordering_metrics(fwd, rev)
    assert m["hit_count"] == 3 + 2 + 2 + 2 and m["pairs"] == 12
    assert m["hit"] == pytest.approx(9 / 12)
    assert m["con@2_count"] == 3 + 1 + 3 + 1
    assert m["con@2"] == pytest.approx(8 / 12)
    assert m["con@3_count"] == 2 and m["con@3"] == pytest.approx(0.5)
    assert m["hit_per_pair"] == {"0-6": 0.75, "1-5": 0.5, "2-4": 1.0}
    assert m["hit_06"] == 0.75 and m["con@2_06_15"] == 0.75
    assert m["negative_side"] == 0.5
    assert sides(np.array([0.0, -1e-9, 2.0])).tolist() == [1, -1, 1]
    with pytest.raises(ValueError):
        ordering_metrics(np.zeros((0, 3)), np.zeros((0, 3)))


def test_hyperplane_is_seeded_affine_and_fixed():
    a, b, c = Hyperplane(128, seed=3), Hyperplane(128, seed=3), Hyperplane(128, seed=4)
    assert torch.equal(a.weight, b.weight) and a.bias == b.bias
    assert not torch.equal(a.weight, c.weight)
    assert a.weight.abs().max() <= 1 and -1 <= a.bias <= 1
    assert list(a.parameters()) == []  # never trained
    v = torch.randn(5, 128)
    assert torch.allclose(a(v), v @ a.weight + a.bias)


def test_network_layout_and_output():
    net = HyperCUTNet()
    convs = [m for m in net.encoder if isinstance(m, torch.nn.Conv2d)]
    assert (convs[0].in_channels, convs[0].out_channels, convs[0].kernel_size) == (6, 32, (7, 7))
    assert [c.out_channels for c in convs[1:]] == [64, 128, 128, 128, 128]
    assert all(c.stride == (2, 2) for c in convs[1:])
    assert sum(isinstance(m, torch.nn.Module) and type(m).__name__ == "ResidualBlock" for m in net.encoder) == 6
    x, y = torch.rand(2, 3, 48, 40), torch.rand(2, 3, 48, 40)
    out = net(x, y)
    assert out.shape == (2, 128)
    assert not torch.allclose(out, net(y, x))  # the pair's order matters


def test_losses_reward_opposite_sides_and_consistency():
    opposite = order_loss(torch.tensor([[3.0, 2, 1]]), torch.tensor([[-3.0, -2, -1]]))
    same = order_loss(torch.tensor([[3.0, 2, 1]]), torch.tensor([[3.0, 2, 1]]))
    assert opposite < 0.2 < 2 < same
    assert same_side_loss(torch.tensor([[-2.0, -2, -2]])) < 0.02
    assert same_side_loss(torch.tensor([[-2.0, 2, -2]])) > 2
    losses = HyperCUTLoss(same_weight=0.5)(torch.tensor([[1.0, 1, 1]]), torch.tensor([[1.0, 1, 1]]))
    assert losses["total"] == pytest.approx(float(losses["order"] + 0.5 * losses["same"]))


def test_escape_term_pulls_apart_where_the_paper_loss_is_flat():
    """Where a pair and its reverse score alike, L_h (+ same-side terms) has no gradient along
    s - r (the plateau fresh networks sit on); the escape term does, and it vanishes once apart."""
    for same_weight, c in ((1.0, 0.0), (3.0, float(np.sqrt(np.log(3))))):  # the plateau's constant score
        gap = torch.tensor(1e-4, requires_grad=True)
        fwd, rev = (c + gap).expand(1, 3), (c - gap).expand(1, 3)
        paper = HyperCUTLoss(same_weight)(fwd, rev)["total"]
        (g_paper,) = torch.autograd.grad(paper, gap)
        (g_escape,) = torch.autograd.grad(escape_loss(fwd, rev), gap)
        assert abs(float(g_paper)) < 1e-3 and float(g_escape) < -0.9  # escape: d/dgap = -2 sigmoid(-2 gap)
    assert escape_loss(torch.tensor([[6.0, 6, 6]]), torch.tensor([[-6.0, -6, -6]])) < 1e-5
    with_escape = HyperCUTLoss(1.0)(torch.ones(2, 3), -torch.ones(2, 3), escape_weight=0.5)
    plain = HyperCUTLoss(1.0)(torch.ones(2, 3), -torch.ones(2, 3))
    assert float(with_escape["total"] - plain["total"]) == pytest.approx(0.5 * float(F.softplus(torch.tensor(-2.0))))


def test_direction_prior_asks_for_the_side_of_the_shift():
    """Each pair on the side of its sequence's projected shift and its reverse on the other; only
    sequences moving more than min_shift count, and the term is 0 (not NaN) when none does."""
    agree, disagree = torch.tensor([[4.0, 4, 4]]), torch.tensor([[-4.0, -4, -4]])
    right = direction_loss(agree, disagree, torch.tensor([2.5]), 1.0)
    assert float(right) == pytest.approx(float(F.softplus(torch.tensor(-4.0))))
    wrong = direction_loss(disagree, agree, torch.tensor([2.5]), 1.0)
    assert float(wrong) == pytest.approx(float(F.softplus(torch.tensor(4.0))))
    assert float(direction_loss(agree, disagree, torch.tensor([-2.5]), 1.0)) == pytest.approx(float(wrong))
    # the still sequence (shift 0.4) is left out of the mean: only the right one counts
    both = direction_loss(torch.cat([agree, agree]), torch.cat([disagree, disagree]), torch.tensor([2.5, -0.4]), 1.0)
    assert float(both) == pytest.approx(float(right))
    still = direction_loss(agree, disagree, torch.tensor([0.4]), 1.0)
    assert float(still) == 0.0
    losses = HyperCUTLoss(1.0, direction_weight=2.0)(disagree, agree, shift=torch.tensor([2.5]))
    plain = HyperCUTLoss(1.0)(disagree, agree)
    assert float(losses["total"] - plain["total"]) == pytest.approx(2 * float(wrong))


def test_r_hyp_prefers_the_negative_side_and_reaches_the_frames():
    torch.manual_seed(0)
    net, plane = HyperCUTNet(), Hyperplane(128, seed=0)
    frames = torch.rand(2, 7, 3, 40, 40, requires_grad=True)
    reg = HyperplaneRegularizer(net, plane)
    fwd, _ = pair_scores(net, plane, frames.detach(), with_reverse=False)
    value = reg(frames)
    assert value.item() == pytest.approx(torch.nn.functional.softplus(fwd).sum(1).mean().item(), rel=1e-5)
    value.backward()
    assert frames.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_classical_peer_measures_a_known_global_shift():
    """The benchmark's peer: phase correlation of each symmetric pair, projected on a fixed axis."""
    import skimage.data

    from rb2v.benchmarks.hypercut import phase_correlation_scores

    photo = skimage.data.astronaut().astype(np.float32) / 255
    # the scene moves 2 px right and 1 px down per frame
    frames = np.stack([photo[100 - t : 164 - t, 200 - 2 * t : 264 - 2 * t] for t in range(7)])
    fwd, rev = phase_correlation_scores(frames, axis=0.3)
    shifts = np.array([6, 4, 2])  # frames apart in (0,6), (1,5), (2,4)
    expected = shifts * (2 * np.cos(0.3) + 1 * np.sin(0.3))
    np.testing.assert_allclose(fwd, expected, rtol=0.06)  # phase correlation reads ~4 % short here
    np.testing.assert_allclose(rev, -expected, rtol=0.06)
    m = ordering_metrics(fwd[None], rev[None])
    assert m["hit"] == 1 and m["con@3"] == 1
