"""The hyperparameter registry: what each preset reproduces, and the named options."""
import pytest

from decathlon.benchmark import PRESETS, hparams, parse_overrides, preset_protocol, pretrain_hparams


def test_spottune_paper_is_the_public_code_as_it_ran():
    hp = hparams("spottune", "aircraft", "spottune_paper")
    assert preset_protocol("spottune_paper") == "trainval"
    assert hp["lr_milestones"] == [40] and hp["epochs"] == 110 and hp["lr"] == 0.1   # one decay, at 40
    assert hp["policy_lr"] == 0.01 and hp["policy_weight_decay"] == 1e-3
    assert hp["eval_policy"] == "sample" and hp["precision"] == "fp32"
    assert hp["weight_decay"] == 5e-4 and hparams("spottune", "vgg-flowers", "spottune_paper")["weight_decay"] == 1e-4
    assert hparams("spottune", "svhn", "spottune_paper")["weight_decay"] == 0.0
    assert hparams("spottune", "aircraft", "spottune_intended")["lr_milestones"] == [40, 60, 80]


def test_adapters_paper_decays_3x3_1x1_and_the_rest_separately():
    hp = hparams("parallel_adapters", "daimlerpedcls", "adapters_paper")
    assert (hp["weight_decay_3x3"], hp["weight_decay_1x1"], hp["weight_decay"]) == (5e-4, 1e-4, 5e-4)
    assert hp["augmentation"] == "adapters" and preset_protocol("adapters_paper") == "train"
    assert hp["lr_milestones"] == [80, 100] and hp["epochs"] == 120


@pytest.mark.parametrize("preset", ["spottune_paper", "spottune_intended", "adapters_paper"])
def test_paper_pretraining_crops_and_flips_as_the_public_backbone_was_made(preset):
    assert pretrain_hparams(preset)["augmentation"] == "adapters"   # random 64 crop + flip, centre 64


def test_cpu_demo_reports_argmax_and_random_policy_keeps_its_own():
    assert hparams("spottune", "dtd", "cpu_demo")["eval_policy"] == "argmax"
    assert hparams("random_policy", "dtd", "spottune_paper")["eval_policy"] == "random"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_has_the_named_options(preset):
    for method in ("finetune", "spottune"):
        hp = hparams(method, "dtd", preset)
        assert {"precision", "weight_decay_3x3", "weight_decay_1x1"} <= set(hp)
    assert pretrain_hparams(preset)["precision"] == "fp32"


def test_bad_values_and_names_are_refused():
    with pytest.raises(ValueError, match="'precision' is 'fp16'; expected one of fp32, bf16"):
        hparams("finetune", "dtd", "cpu_demo", {"precision": "fp16"})
    with pytest.raises(KeyError, match="unknown hyperparameter 'policy_lr' for finetune"):
        hparams("finetune", "dtd", "cpu_demo", {"policy_lr": 0.1})
    with pytest.raises(KeyError, match="unknown preset"):
        preset_protocol("nope")
    assert parse_overrides(["precision=bf16", "lr_milestones=[1,2]"]) == {"precision": "bf16",
                                                                           "lr_milestones": [1, 2]}


@pytest.mark.parametrize("preset", ["spottune_paper", "spottune_intended", "adapters_paper"])
def test_paper_presets_round_crops_as_python_2_and_keep_the_partial_batch(preset):
    """The public codes ran torchvision's int(round(...)) under Python 2 (halves away from
    zero) and loaded with DataLoader's drop_last=False; pretraining as the public backbone's code."""
    for hp in (hparams("spottune", "dtd", preset), hparams("finetune", "gtsrb", preset), pretrain_hparams(preset)):
        assert hp["crop_rounding"] == "half_away" and hp["drop_last"] is False


def test_cpu_demo_keeps_python_3_rounding_and_full_batches():
    """So that the committed demo results stay what they are."""
    for hp in (hparams("spottune", "dtd", "cpu_demo"), pretrain_hparams("cpu_demo")):
        assert hp["crop_rounding"] == "half_even" and hp["drop_last"] is True


def test_unknown_crop_rounding_is_refused():
    with pytest.raises(ValueError, match="'crop_rounding' is 'half_up'; expected one of half_even, half_away"):
        hparams("finetune", "dtd", "spottune_paper", {"crop_rounding": "half_up"})
    with pytest.raises(ValueError, match="'crop_rounding' is 'nearest'"):
        pretrain_hparams("cpu_demo", {"crop_rounding": "nearest"})


def test_overrides_must_have_the_type_of_their_default():
    for overrides, message in (({"epochs": 1.5}, r"'epochs' is 1.5; expected an int \(its default is 3\)"),
                               ({"epochs": True}, r"'epochs' is true; expected an int"),
                               ({"lr_milestones": [1.5]}, r"'lr_milestones' is \[1.5\]; expected a list of int"),
                               ({"lr": "fast"}, r"'lr' is \"fast\"; expected a float"),
                               ({"weight_decay_3x3": "x"}, r"expected a float or null")):
        with pytest.raises(ValueError, match=message):
            hparams("spottune", "dtd", "cpu_demo", overrides)
    with pytest.raises(ValueError, match=r"'batch_size' is 0.5; expected an int"):
        pretrain_hparams("cpu_demo", {"batch_size": 0.5})
    accepted = hparams("finetune", "dtd", "adapters_paper", {"lr": 1, "weight_decay_3x3": None, "width": 0.5})
    assert (accepted["lr"], accepted["weight_decay_3x3"], accepted["width"]) == (1, None, 0.5)
