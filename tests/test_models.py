"""Models: shapes, the CIFAR-form ResNets, and the chunk-invariance of the full-batch gradient
(float64 throughout, from conftest)."""
import pytest
import torch
from torch import nn

from bea_lib.nets.models import has_batch_norm, make_model
from bea_lib.nets.module_net import full_batch_gradient


def _reference_gradient(model, x, y):
    """E and ∇E of one forward pass over all examples, the mean loss: independent of chunks."""
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    return loss.detach(), torch.autograd.grad(loss, list(model.parameters()))


def _chunked(model, x, y, chunk_size):
    stats = full_batch_gradient(model, x, y, chunk_size=chunk_size)
    return stats[0], [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("name, shape",
                         [("mlp", (1, 40)), ("cnn", (1, 40)), ("cnn", (1, 8, 8)),
                          ("mlp", (3, 32, 32))])
def test_small_models_output_logits(name, shape):
    model = make_model(name, shape, 7)
    assert model(torch.randn(5, *shape)).shape == (5, 7)


def test_resnets_have_the_cifar_stem():
    torch.set_default_dtype(torch.float32)  # float32 initialisation of 66M weights: twice as fast
    x = torch.randn(1, 3, 8, 8)
    for name, n_blocks in (("resnet50", 16), ("resnet101", 33)):
        model = make_model(name, (3, 32, 32), 100)
        assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
        assert isinstance(model.maxpool, nn.Identity)
        assert sum(len(layer) for layer in (model.layer1, model.layer2, model.layer3,
                                            model.layer4)) == n_blocks
        assert not has_batch_norm(model) and any(isinstance(m,
                                                            nn.GroupNorm) for m in model.modules())
        with torch.no_grad():
            assert model(x).shape == (1, 100)


@pytest.mark.parametrize("name, shape, n",
                         [("mlp", (1, 40), 7), ("cnn", (1, 40), 7), ("resnet50", (3, 4, 4), 2)])
def test_gradient_is_the_same_for_every_chunk_size(name, shape, n):
    torch.manual_seed(1)
    model = make_model(name, shape, 10, **({"norm": "group"} if name == "cnn" else {}))
    x, y = torch.randn(n, *shape), torch.randint(0, 10, (n,))
    ref_loss, ref_grad = _reference_gradient(model, x, y)
    for chunk_size in sorted({1, 2, n}):
        loss, grad = _chunked(model, x, y, chunk_size)
        # float64 sums of n terms in another order: rounding ~1e-16 per term, relative
        assert torch.allclose(loss, ref_loss, rtol=1e-12, atol=0)
        for g, r in zip(grad, ref_grad):
            # same, per component; atol for components that cancel to ~0 (GroupNorm biases)
            assert torch.allclose(g, r, rtol=1e-10, atol=1e-14)


def test_batch_norm_makes_the_loss_depend_on_the_chunking():
    torch.manual_seed(1)
    model = make_model("cnn", (1, 40), 10, norm="batch")
    assert has_batch_norm(model)
    x, y = torch.randn(8, 1, 40), torch.randint(0, 10, (8,))
    loss_2, _ = _chunked(model, x, y, 2)
    loss_8, _ = _chunked(model, x, y, 8)
    # chunk statistics from 2 vs 8 examples: an O(1) change, far above rounding
    assert abs(loss_2 - loss_8) > 1e-3


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="vgg"), "model must be one of"),
    (dict(name="cnn", norm="layer"), "norm must be one of"),
    (dict(name="mlp", norm="group"), "norm must be 'none' for the mlp"),
    (dict(name="mlp", width=0), "width must be an integer >= 1"),
    (dict(name="resnet50", width=16), "width is not an option of resnet50"),
])
def test_bad_model_arguments_are_named(kwargs, match):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=match):
        make_model(name, (3, 8, 8), 10, **kwargs)


def test_resnet_needs_images():
    with pytest.raises(ValueError, match=r"resnet50 takes images \(C, H, W\)"):
        make_model("resnet50", (1, 40), 10)
