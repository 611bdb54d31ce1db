"""The lm-eval adapter offline: lm_eval.simple_evaluate(model="prime") on tiny local tasks (json data files)."""

import json
import math

import pytest

lm_eval = pytest.importorskip("lm_eval", reason="pip install 'prime-plugin-text[lmeval]'")

from prime_plugin_text.testing import tiny_text_checkpoint  # noqa: E402

TASKS = {
    "prime_tiny_mc": """
output_type: multiple_choice
doc_to_text: "{{context}}"
doc_to_target: label
doc_to_choice: choices
metric_list:
  - metric: acc
""",
    "prime_tiny_rolling": """
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{context}}"
metric_list:
  - metric: word_perplexity
  - metric: bits_per_byte
""",
    "prime_tiny_gen": """
output_type: generate_until
doc_to_text: "{{context}}"
doc_to_target: "{{choices[0]}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 20
metric_list:
  - metric: exact_match
""",
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmeval")
    ckpt = tiny_text_checkpoint(root, stride=5, words_per_line=10, sets=("sample.steps=4",))
    data = root / "data.jsonl"
    docs = [{"context": "the quick brown", "choices": [" fox", " dog"], "label": 0},
            {"context": "Emma and Harriet walk to", "choices": [" Highbury", " the lazy dog jumps over"], "label": 0},
            {"context": "a lazy dog while Emma and Harriet walk to Highbury the quick brown fox jumps over a lazy",
             "choices": [" dog", " fox"], "label": 0}]
    data.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    tasks = root / "tasks"
    tasks.mkdir()
    for name, body in TASKS.items():
        (tasks / f"{name}.yaml").write_text(f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                            f"    test: {data}\ntest_split: test\n{body}", encoding="utf-8")
    return ckpt, str(tasks)


def test_simple_evaluate_offline(setup, monkeypatch):
    import prime_plugin_text.lmeval  # noqa: F401  (registers "prime")
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ckpt, tasks = setup
    out = lm_eval.simple_evaluate(model="prime", model_args=f"checkpoint={ckpt},mc=2,steps=4",
                                  tasks=list(TASKS), task_manager=TaskManager(include_path=tasks),
                                  log_samples=True)
    res = out["results"]
    assert 0.0 <= res["prime_tiny_mc"]["acc,none"] <= 1.0
    assert res["prime_tiny_rolling"]["word_perplexity,none"] > 1.0
    assert res["prime_tiny_gen"]["exact_match,none"] in (0.0, 1 / 3, 2 / 3, 1.0)
    gens = [s["resps"][0][0] for s in out["samples"]["prime_tiny_gen"]]
    assert len(gens) == 3 and all(isinstance(g, str) and "\n" not in g for g in gens)
    for s in out["samples"]["prime_tiny_mc"]:
        assert all(r[0][1] is False and r[0][0] < 0 for r in s["resps"])  # −bound, never called greedy


def test_loglikelihood_is_minus_a_valid_conditional_bound(setup):
    from lm_eval.api.instance import Instance

    from prime_plugin_text.lmeval import PrimeLM

    ckpt, _ = setup
    lm = PrimeLM(checkpoint=ckpt, mc=64, seed=3)
    req = lambda *args: Instance("loglikelihood", {}, args, 0)  # noqa: E731
    (ll, greedy), (empty, _) = lm.loglikelihood([req("the quick", " brown fox"), req("the quick", "")])
    assert ll < 0 and greedy is False and empty == 0.0
    # the same estimate by hand: −E[conditional NELBO] with BOS + context fixed, the continuation scored
    ctx = [lm.text.bos_id] + lm.text.encode_text("the quick")
    assert ll == pytest.approx(-lm.bound(ctx, lm.text.encode_text(" brown fox"), 3))
    # a long text is scored in windows: still finite and larger (in nats) than one of its windows
    long_text = " the quick brown fox jumps over a lazy dog" * 4
    (rolled,) = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (long_text,), 0)])
    assert math.isfinite(rolled) and rolled < ll
