import pytest

from ganbench.data import DATASETS
from ganbench.errors import UserError
from ganbench.losses import LOSSES
from ganbench.metrics import METRICS
from ganbench.models import MODELS
from ganbench.registry import Registry


def test_register_and_lookup():
    reg = Registry("widget")

    @reg.register("alpha")
    def alpha():
        return 1

    reg.register("beta", 2)
    assert reg["alpha"] is alpha and reg["beta"] == 2
    assert sorted(reg) == ["alpha", "beta"]


def test_duplicates_fail_loudly():
    reg = Registry("widget")
    reg.register("alpha", 1)
    with pytest.raises(ValueError, match="widget 'alpha' is already registered"):
        reg.register("alpha", 2)
    with pytest.raises(TypeError):
        reg["gamma"] = 3


def test_unknown_names_suggest_close_matches():
    with pytest.raises(UserError, match=r"unknown model 'mpl'; did you mean 'mlp'.*\(known: .*mlp"):
        MODELS["mpl"]
    with pytest.raises(UserError, match="unknown loss 'hinje'; did you mean 'hinge'"):
        LOSSES["hinje"]
    with pytest.raises(UserError, match="unknown dataset 'ring9'; did you mean 'ring8'"):
        DATASETS["ring9"]
    with pytest.raises(UserError, match=r"unknown metric 'zzz' \(known:"):
        METRICS["zzz"]


def test_builtin_entries():
    assert {"ns", "minimax", "lsgan", "wgan-gp", "hinge"} <= set(LOSSES)
    assert {"ring8", "grid25"} <= set(DATASETS)
    assert {"modes", "hq", "kl"} <= set(METRICS)
    assert "mlp" in MODELS
    assert METRICS["modes"].higher_is_better and not METRICS["kl"].higher_is_better
