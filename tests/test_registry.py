import pytest

from securedd.errors import UnknownNameError
from securedd.registry import Registry


def test_register_get_and_list():
    reg: Registry[int] = Registry("thing")
    reg.register("One", help="the first")(1)
    assert reg.get("one") == 1 and reg.get("ONE") == 1
    assert reg.names() == ["one"] and "one" in reg and len(reg) == 1
    assert reg.describe("one") == "the first"


def test_unknown_name_lists_valid_names_and_suggests_closest():
    reg: Registry[int] = Registry("model")
    reg.register("convnet")(1)
    reg.register("resnet18")(2)
    with pytest.raises(UnknownNameError) as err:
        reg.get("convnett")
    msg = str(err.value)
    assert "unknown model 'convnett'" in msg and "Did you mean 'convnet'?" in msg and "resnet18" in msg


def test_duplicate_registration_is_refused():
    reg: Registry[int] = Registry("thing")
    reg.register("a")(1)
    with pytest.raises(ValueError):
        reg.register("A")(2)
