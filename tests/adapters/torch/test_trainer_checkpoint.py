"""A real Hugging Face Trainer ``checkpoint-N/`` directory, made here by transformers' own
``Trainer``: inspected with its training state, converted to safetensors and back with
every tensor and value kept, resumed from, and refused with the file named when damaged."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")
import user_recipes
from nested_asserts import assert_same

from portability.adapters.torch.safety import load_pickle, rng_state_globals
from portability.core.conversion import convert
from portability.core.inspection import inspect_checkpoint
from portability.errors import FormatError, UnsafeCheckpointError, WriteError

PICKLED = ("optimizer.pt", "scheduler.pt", "rng_state.pth")


@pytest.fixture
def cli(capsys):
    """``portability ARGS`` in this process: ``(exit code, stdout, stderr)``."""
    from portability.cli import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _one_line_error(result, *names, dst=None):
    code, _out, err = result
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    for name in names:
        assert name in err, (name, err)
    if dst is not None:
        assert not dst.exists() and not [p for p in dst.parent.iterdir() if ".portability-" in p.name]


def _train(output_dir, max_steps: int, resume_from=None):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(output_dir), max_steps=max_steps, save_steps=4,
                             per_device_train_batch_size=4, learning_rate=1e-3, warmup_steps=1,
                             lr_scheduler_type="linear", report_to=[], use_cpu=True, logging_steps=100,
                             disable_tqdm=True, seed=0)
    trainer = Trainer(model=user_recipes.tiny_bert(), args=args, train_dataset=user_recipes.TokenPairs())
    result = trainer.train(resume_from_checkpoint=None if resume_from is None else str(resume_from))
    return trainer, result


@pytest.fixture(scope="module")
def trainer_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("trainer")
    _train(out, 4)
    path = out / "checkpoint-4"
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "optimizer.pt",
                                                      "rng_state.pth", "scheduler.pt", "trainer_state.json",
                                                      "training_args.bin"]
    return path


@pytest.fixture(scope="module")
def round_trip(trainer_checkpoint, tmp_path_factory):
    work = tmp_path_factory.mktemp("round-trip")
    convert(trainer_checkpoint, work / "state.safetensors")
    convert(work / "state.safetensors", work / "checkpoint-4", to="torch")
    return work / "state.safetensors", work / "checkpoint-4"


def test_rng_state_needs_exactly_the_numpy_globals_we_allow(trainer_checkpoint):
    """torch's own weights_only load refuses rng_state.pth (numpy's RNG state); ours reads it."""
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(trainer_checkpoint / "rng_state.pth", weights_only=True)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(trainer_checkpoint / "rng_state.pth"))
    assert sorted(unsafe) == ["numpy._core.multiarray._reconstruct", "numpy.dtype", "numpy.ndarray"]
    rng = load_pickle(trainer_checkpoint / "rng_state.pth", trust_pickle=False, allowed=rng_state_globals())
    assert sorted(rng) == ["cpu", "numpy", "python"] and rng["numpy"][0] == "MT19937"
    uint32 = type(np.dtype(np.uint32))
    fewer = [g for g in rng_state_globals() if g is not uint32]  # the three names torch lists, no dtype class
    with pytest.raises(FormatError, match="Weights only load failed"):
        load_pickle(trainer_checkpoint / "rng_state.pth", trust_pickle=False, allowed=fewer)


def test_inspect_shows_optimizer_scheduler_rng_and_step(trainer_checkpoint, cli):
    code, out, err = cli("inspect", trainer_checkpoint, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["format"], info["layout"]) == ("torch", "hf-trainer")
    ts = info["training_state"]
    params = len(info["tensors"])
    assert ts["optimizer"] == {"kind": "AdamW", "param_groups": 2, "parameters_with_state": params}
    assert ts["scheduler"] is True and ts["global_step"] == 4 and ts["epoch"] == 0.5
    assert ts["rng"] == ["cpu", "numpy", "python"]
    assert sorted(ts["carried_files"]) == ["config.json", "training_args.bin"]
    assert any(n.startswith("training_args.bin: a pickled TrainingArguments") for n in ts["notes"])
    assert "trainer_state" in ts["extra_keys"]


def test_round_trip_through_safetensors_keeps_every_tensor_and_value(trainer_checkpoint, round_trip):
    from safetensors import safe_open
    from safetensors.torch import load_file

    single, back = round_trip
    with safe_open(str(single), "pt") as f:
        moments = [n for n in f.keys() if n.endswith((".exp_avg", ".exp_avg_sq"))]
        original = load_pickle(trainer_checkpoint / "optimizer.pt", trust_pickle=False)
        stored = {n: f.get_tensor(n) for n in moments}
    assert len(moments) == 2 * len(original["state"])  # AdamW's two moments per parameter, without pickle
    for pid, state in original["state"].items():
        assert torch.equal(stored[f"__training__.optimizer.{pid}.exp_avg"], state["exp_avg"])
        assert torch.equal(stored[f"__training__.optimizer.{pid}.exp_avg_sq"], state["exp_avg_sq"])
    assert sorted(p.name for p in back.iterdir()) == sorted(p.name for p in trainer_checkpoint.iterdir())
    for name in PICKLED:
        assert_same(load_pickle(trainer_checkpoint / name, False), load_pickle(back / name, False), name)
    assert_same(load_file(trainer_checkpoint / "model.safetensors"), load_file(back / "model.safetensors"))
    for name in ("trainer_state.json", "config.json", "training_args.bin"):
        assert (back / name).read_bytes() == (trainer_checkpoint / name).read_bytes(), name


@pytest.mark.slow
def test_the_trainer_resumes_from_the_converted_directory_as_from_its_own(trainer_checkpoint, round_trip,
                                                                          tmp_path):
    own_trainer, own = _train(tmp_path / "own", 8, trainer_checkpoint)
    converted_trainer, converted = _train(tmp_path / "converted", 8, round_trip[1])
    assert own.global_step == converted.global_step == 8
    assert own.training_loss == converted.training_loss
    assert_same(own_trainer.model.state_dict(), converted_trainer.model.state_dict())


@pytest.mark.slow
def test_resume_parity_starts_from_the_trainer_checkpoint(trainer_checkpoint):
    from portability.faults.resume_from import resume_from
    from portability.training.torch_recipes import recipe_task

    task = recipe_task("user_recipes:bert_trainer_recipe", user_recipes.bert_trainer_recipe)
    results = resume_from(task, trainer_checkpoint, steps=4)
    assert [(r.route, r.resumed_from_step, r.steps_compared, r.bitwise) for r in results] == [
        ("safetensors", 4, 4, True), ("safetensors->back", 4, 4, True)]


def test_weights_only_destination_is_refused_until_asked(trainer_checkpoint, tmp_path, cli):
    dst = tmp_path / "weights.onnx"
    model = f"hf:{trainer_checkpoint}"  # its config.json builds the model
    _one_line_error(cli("convert", trainer_checkpoint, dst, "--model", model),
                    "onnx does not store training state", "optimizer, scheduler, rng", "--weights-only", dst=dst)
    with pytest.raises(WriteError, match="onnx does not store training state"):
        convert(trainer_checkpoint, dst, model=model)


def test_a_damaged_training_file_is_named_never_read_as_weights_only(trainer_checkpoint, tmp_path, cli):
    broken = tmp_path / "checkpoint-4"
    shutil.copytree(trainer_checkpoint, broken)
    data = (broken / "optimizer.pt").read_bytes()
    (broken / "optimizer.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"optimizer\.pt: .*--weights-only"):
        inspect_checkpoint(broken)
    dst = tmp_path / "out.safetensors"
    _one_line_error(cli("convert", broken, dst), "optimizer.pt", "--weights-only", dst=dst)
    code, out, err = cli("convert", broken, dst, "--weights-only")
    assert code == 0, err
    assert "with training state" not in out and "training state not written" not in out  # never read


def test_a_scheduler_file_that_pickles_its_function_is_refused_with_the_reason(trainer_checkpoint, tmp_path):
    broken = tmp_path / "checkpoint-4"
    shutil.copytree(trainer_checkpoint, broken)
    state = load_pickle(broken / "scheduler.pt", False)
    state["lr_lambdas"] = [json.loads, json.loads]  # what a LambdaLR saved whole would hold: the function
    torch.save(state, broken / "scheduler.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"scheduler\.pt.*json\.loads.*--weights-only"):
        inspect_checkpoint(broken)
    out = tmp_path / "weights.safetensors"
    result = convert(broken, out, weights_only=True)
    assert not result.training_state and result.tensors == len(inspect_checkpoint(trainer_checkpoint)["tensors"])
