"""Train the demo family: a tiny Llama base on a generic mixture, then one expert per skill fine-tuned
from it; score them and a few merges; write public/demo (weights, configs, tokenizer, index.json,
tasks.json) and this folder's results.json and loss-curves.svg.

    python3 scripts/demo-family/train.py            # the committed demo set (fixed seeds)
    python3 scripts/demo-family/train.py --out /tmp/demo --results /tmp/demo   # a trial elsewhere
    python3 scripts/demo-family/train.py --only expert-3   # retrain one expert from the committed base

Everything is seeded; on the same PyTorch build and CPU the weights come out bit for bit the same.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from llama import CausalLM, LlamaConfig, save_model, state_to_bf16  # noqa: E402
from merges import merge  # noqa: E402
from tasks import BOS, EOS, GENERIC, PAD, SKILLS, VOCAB, decode, encode, held_out, tokenizer_config_json, tokenizer_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@dataclass
class Stage:
    name: str
    mixture: dict[str, float]  # task name -> sampling weight
    steps: int
    lr: float
    warmup: int
    weight_decay: float
    seed: int


@dataclass
class Plan:
    seed: int = 1234
    batch: int = 64
    test_per_skill: int = 64
    # The experts, in index.json order: folder name -> skill.
    experts: dict[str, str] = field(default_factory=lambda: {'expert-1': 'add', 'expert-2': 'sort', 'expert-3': 'rev'})
    # count stays in the base mixture (the base was trained on it), but no expert or score uses it. rev is in
    # it at 5%: a base that never saw rev (0%) left merges at 0% on rev (the rev vector fights sort's); 10-15%
    # teach the base too much rev (69-100%), and the add and sort experts, replaying it, come within 20
    # points of the rev expert.
    base_mixture: dict[str, float] = field(default_factory=lambda: {'copy': 0.45, 'add': 0.3, 'sort': 0.05, 'rev': 0.05, 'count': 0.15})
    base_steps: int = 600
    base_lr: float = 3e-3
    expert_steps: int = 500
    expert_lr: float = 1e-3
    # Per-expert changes to expert_steps / expert_lr: folder -> {'steps': ..., 'lr': ...}. Chosen when the
    # base had no rev (its task vector fought sort's: at lr 1e-3 the merges lost sort, at 3e-4 for 500 steps
    # the expert was not yet sure); 1000 steps at 3e-4 give a 100% expert and merges that keep all three skills.
    expert_overrides: dict[str, dict[str, float]] = field(default_factory=lambda: {'expert-3': {'steps': 1000, 'lr': 3e-4}})
    # The skills the merges (default TIES, task arithmetic 0.5) must score above the base: all three.
    merged_skills: list[str] = field(default_factory=lambda: ['add', 'sort', 'rev'])
    # Share of the expert's data drawn from the base mixture (replay), the rest is its own skill.
    expert_replay: float = 0.3
    # The studio's default recipe (TIES): per-expert weight and density.
    recipe_weights: list[float] = field(default_factory=lambda: [1.0, 0.8, 0.6])
    recipe_densities: list[float] = field(default_factory=lambda: [0.6, 0.5, 0.7])
    model: LlamaConfig = field(default_factory=lambda: LlamaConfig(vocab_size=len(VOCAB), hidden_size=64, intermediate_size=192))


MAKERS = {**{k: s.make for k, s in SKILLS.items()}, **GENERIC}


def make_batch(rng: random.Random, mixture: dict[str, float], n: int, exclude: set[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets; only answer tokens and <eos> are targets (others -100)."""
    names, weights = zip(*mixture.items())
    seqs, starts = [], []
    for _ in range(n):
        while True:
            prompt, answer = MAKERS[rng.choices(names, weights)[0]](rng)
            if prompt not in exclude:
                break
        seqs.append([BOS] + encode(prompt) + encode(answer) + [EOS])
        starts.append(1 + len(prompt))  # index of the first answer token
    t = max(map(len, seqs))
    ids = torch.full((n, t), PAD, dtype=torch.long)
    tgt = torch.full((n, t), -100, dtype=torch.long)
    for i, (s, a) in enumerate(zip(seqs, starts)):
        ids[i, : len(s)] = torch.tensor(s)
        tgt[i, a - 1 : len(s) - 1] = torch.tensor(s[a:])
    return ids, tgt


def train(model: CausalLM, stage: Stage, batch: int, exclude: set[str], log_every: int = 25) -> list[tuple[int, float]]:
    torch.manual_seed(stage.seed)
    rng = random.Random(stage.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=stage.lr, betas=(0.9, 0.98), weight_decay=stage.weight_decay)
    curve, running = [], []
    model.train()
    for step in range(1, stage.steps + 1):
        lr = stage.lr * min(1.0, step / stage.warmup) * 0.5 * (1 + math.cos(math.pi * step / stage.steps))
        for g in opt.param_groups:
            g['lr'] = lr
        ids, tgt = make_batch(rng, stage.mixture, batch, exclude)
        loss = F.cross_entropy(model(ids).flatten(0, 1), tgt.flatten(), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running.append(loss.item())
        if step % log_every == 0:
            curve.append((step, sum(running) / len(running)))
            running = []
    model.eval()
    print(f'  {stage.name}: final train loss {curve[-1][1]:.4f}', flush=True)
    return curve


@torch.no_grad()
def score(model: CausalLM, tests: list[tuple[str, str]]) -> dict[str, float]:
    """Exact-match accuracy of greedy answers (up to <eos>) and mean answer loss (nats per answer token,
    <eos> included, averaged per example then over examples)."""
    by_len: dict[int, list[tuple[str, str]]] = {}
    for p, a in tests:
        by_len.setdefault(len(p), []).append((p, a))
    correct, losses = 0, []
    for group in by_len.values():
        prompts = torch.tensor([[BOS] + encode(p) for p, _ in group])
        max_new = max(len(a) for _, a in group) + 1
        ids = prompts
        for _ in range(max_new):
            nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
        for row, (_, a) in zip(ids[:, prompts.shape[1]:].tolist(), group):
            got = row[: row.index(EOS)] if EOS in row else None
            correct += got is not None and decode(got) == a and len(got) == len(a)
        for p, a in group:
            seq = torch.tensor([[BOS] + encode(p) + encode(a) + [EOS]])
            logp = F.log_softmax(model(seq)[0, :-1].float(), -1)
            start = len(p)  # logits at position i predict token i+1; the first answer token is at len(p)+1
            tgt = seq[0, start + 1 :]
            losses.append(-logp[start:].gather(1, tgt[:, None]).mean().item())
    return {'accuracy': correct / len(tests), 'loss': sum(losses) / len(losses)}


def reuse(folder: Path, cfg: LlamaConfig) -> dict[str, torch.Tensor]:
    """A committed model's bfloat16 weights (the state it was saved from), after checking its config."""
    if LlamaConfig.from_hf(folder / 'config.json') != cfg:
        raise SystemExit(f'{folder}/config.json is not the plan\'s model; retrain it instead of reusing it')
    return {k: v.contiguous() for k, v in load_file(str(folder / 'model.safetensors')).items()}


def load_state(model: CausalLM, state: dict[str, torch.Tensor]) -> CausalLM:
    model.load_state_dict({k: v.float() for k, v in state.items()})
    model.eval()
    return model


def score_all(cfg: LlamaConfig, state: dict[str, torch.Tensor], tests: dict[str, list]) -> dict[str, dict[str, float]]:
    model = load_state(CausalLM(cfg), state)
    return {s: score(model, t) for s, t in tests.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', type=Path, default=ROOT / 'public' / 'demo', help='folder for the models, index.json and tasks.json')
    ap.add_argument('--results', type=Path, default=HERE, help='folder for results.json and loss-curves.svg')
    ap.add_argument('--threads', type=int, default=1, help='CPU threads (the committed set was made with 1)')
    ap.add_argument('--only', nargs='+', metavar='FOLDER', help='train only these experts; read the base and the '
                    'other experts from --from (their loss curves from this folder\'s results.json)')
    ap.add_argument('--from', dest='source', type=Path, default=ROOT / 'public' / 'demo', help='models reused with --only')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    plan = Plan()
    cfg = plan.model
    skills = list(plan.experts.values())
    tests = {s: held_out(SKILLS[s], plan.test_per_skill, plan.seed) for s in skills}
    # No stage trains on a held-out prompt of any skill (count's too: it is in the base mixture).
    exclude = {p for s in SKILLS.values() for p, _ in held_out(s, plan.test_per_skill, plan.seed)}
    t0 = time.time()

    trained = args.only or ['base', *plan.experts]
    unknown = set(trained) - set(plan.experts) - {'base'}
    if unknown:
        raise SystemExit(f'--only: no expert {sorted(unknown)} in the plan ({list(plan.experts)})')
    curves, states = {}, {}
    if 'base' in trained:
        torch.manual_seed(plan.seed)
        base = CausalLM(cfg)
        print('base', flush=True)
        curves['base'] = train(base, Stage('base', plan.base_mixture, plan.base_steps, plan.base_lr, 100, 0.01, plan.seed), plan.batch, exclude)
        states['base'] = state_to_bf16(base.state_dict())
    for name in ['base', *plan.experts]:
        if name not in trained:
            states[name] = reuse(args.source / name, cfg)
            curves[name] = json.loads((HERE / 'results.json').read_text())['loss_curves'][name]  # the committed run's
            print(f'{name}: reused from {args.source / name}', flush=True)
    for i, (folder, skill) in enumerate(plan.experts.items()):
        if folder not in trained:
            continue
        print(folder, skill, flush=True)
        model = load_state(CausalLM(cfg), states['base'])
        mixture = {k: plan.expert_replay * v for k, v in plan.base_mixture.items()}
        mixture[skill] = mixture.get(skill, 0.0) + 1 - plan.expert_replay
        o = plan.expert_overrides.get(folder, {})
        stage = Stage(folder, mixture, int(o.get('steps', plan.expert_steps)), o.get('lr', plan.expert_lr), 30, 0.0, plan.seed + 1 + i)
        curves[folder] = train(model, stage, plan.batch, exclude)
        states[folder] = state_to_bf16(model.state_dict())
    curves = {name: curves[name] for name in ['base', *plan.experts]}

    experts = [states[f] for f in plan.experts]
    merged = {name: merge(states['base'], experts, **kw) for name, kw in merge_recipes(plan).items()}
    table = {name: score_all(cfg, st, tests) for name, st in {**states, **merged}.items()}
    print(f'trained and scored in {time.time() - t0:.0f} s')
    print_table(table, skills)
    args.results.mkdir(parents=True, exist_ok=True)
    torch.save({'states': states, 'curves': curves, 'table': table}, args.results / 'run.pt')  # not committed
    problems = check(table, plan)

    write_models(args.out, cfg, {name: states[name] for name in trained})
    write_tasks(args.out, plan, tests)
    write_index(args.out, plan)
    results = {'plan': plan_dict(plan), 'final_train_loss': {k: c[-1][1] for k, c in curves.items()},
               'scores': table, 'loss_curves': curves}
    (args.results / 'results.json').write_text(json.dumps(results, indent=1) + '\n')
    (args.results / 'loss-curves.svg').write_text(loss_svg(curves))
    (args.results / 'scores.md').write_text(markdown_table(table, skills))
    if problems:
        raise SystemExit('demo family not good enough:\n  ' + '\n  '.join(problems))


def merge_recipes(plan: Plan) -> dict[str, dict]:
    """The merges in the score table; the first is the studio's default recipe (index.json)."""
    n = len(plan.experts)
    w, d = plan.recipe_weights, plan.recipe_densities
    return {
        f'{DEFAULT_MERGE}': dict(weights=w, method='ties', densities=d),
        'task_arithmetic, weight 1 each': dict(weights=[1.0] * n, method='task_arithmetic'),
        HALF_TASK_ARITHMETIC: dict(weights=[0.5] * n, method='task_arithmetic'),
        'ties, weight 1, density 0.5 each': dict(weights=[1.0] * n, method='ties', densities=[0.5] * n),
    }


DEFAULT_MERGE = 'ties, the studio default recipe'
HALF_TASK_ARITHMETIC = 'task_arithmetic, weight 0.5 each'


def check(table: dict, plan: Plan) -> list[str]:
    """The properties the demo needs (the run still writes its files, then fails, when one is missing)."""
    problems = []
    for folder, skill in plan.experts.items():
        own = table[folder][skill]['accuracy']
        for other, row in table.items():
            if other != folder and other in ['base', *plan.experts] and row[skill]['accuracy'] + 0.2 > own:
                problems.append(f'{folder} ({skill}) {own:.2f} is not clearly above {other} {row[skill]["accuracy"]:.2f}')
        for merged in (DEFAULT_MERGE, HALF_TASK_ARITHMETIC) if skill in plan.merged_skills else ():
            m = table[merged][skill]
            if not (m['accuracy'] > table['base'][skill]['accuracy'] and m['loss'] < table['base'][skill]['loss']):
                problems.append(f'{merged} does not beat the base on {skill}')
    return problems


def write_models(out: Path, cfg: LlamaConfig, states: dict[str, dict[str, torch.Tensor]]) -> None:
    gen = json.dumps({'bos_token_id': BOS, 'eos_token_id': EOS, 'pad_token_id': PAD, 'do_sample': False, 'max_new_tokens': 12}, indent=2) + '\n'
    for folder, state in states.items():
        save_model(out / folder, cfg, state, torch.bfloat16, {
            'tokenizer.json': tokenizer_json(),
            'tokenizer_config.json': tokenizer_config_json(cfg.max_position_embeddings),
            'generation_config.json': gen,
        })


def write_tasks(out: Path, plan: Plan, tests: dict[str, list[tuple[str, str]]]) -> None:
    doc = {
        'description': 'Held-out prompts of the demo family (never seen in training). Score a model by feeding '
                       '<bos> + prompt and decoding greedily until <eos>: exact match of the answer, and the mean '
                       'answer loss (teacher-forced negative log-likelihood in nats of the answer tokens and <eos>, '
                       'averaged per prompt, then over prompts).',
        'seed': plan.seed,
        'skills': [
            {'name': skill, 'description': SKILLS[skill].description, 'example': SKILLS[skill].example,
             'expert': f'./demo/{folder}', 'examples': [{'prompt': p, 'answer': a} for p, a in tests[skill]]}
            for folder, skill in plan.experts.items()
        ],
    }
    (out / 'tasks.json').write_text(json.dumps(doc, indent=1) + '\n')


def write_index(out: Path, plan: Plan) -> None:
    files = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']
    models = [{'ref': './demo/base', 'name': 'base', 'folder': 'base', 'files': files}]
    models += [{'ref': f'./demo/{f}', 'name': f, 'folder': f, 'skill': s, 'files': files} for f, s in plan.experts.items()]
    lines = ['models:']
    for (folder, _), w, d in zip(plan.experts.items(), plan.recipe_weights, plan.recipe_densities):
        lines += [f'  - model: ./demo/{folder}', f'    parameters: {{weight: {w:g}, density: {d:g}}}']
    lines += ['merge_method: ties', 'base_model: ./demo/base', 'dtype: float32', 'out_dtype: bfloat16']
    cfg = plan.model
    skills = ', '.join(f'{f}: {SKILLS[s].description}' for f, s in plan.experts.items())
    doc = {
        'description': f'A tiny trained Llama family ({cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, '
                       f'{cfg.num_attention_heads} query / {cfg.num_key_value_heads} KV heads, character vocabulary of '
                       f'{cfg.vocab_size}, bfloat16): a base trained on a generic mixture and one expert fine-tuned '
                       f'from it per skill ({skills}). Made by scripts/demo-family/train.py; tasks.json holds the '
                       'held-out prompts that score them.',
        'models': models,
        'tasks': 'tasks.json',
        'recipe': '\n'.join(lines) + '\n',
    }
    (out / 'index.json').write_text(json.dumps(doc, indent=2) + '\n')


def plan_dict(plan: Plan) -> dict:
    d = dict(vars(plan))
    d['model'] = vars(plan.model)
    return d


def print_table(table: dict[str, dict[str, dict[str, float]]], skills: list[str]) -> None:
    print('model'.ljust(36) + ''.join(f'{s:>16}' for s in skills))
    for name, row in table.items():
        print(name.ljust(36) + ''.join(f"{row[s]['accuracy'] * 100:7.1f}% {row[s]['loss']:7.3f}" for s in skills))


def markdown_table(table: dict[str, dict[str, dict[str, float]]], skills: list[str]) -> str:
    head = '| model | ' + ' | '.join(f'{s}: exact match | {s}: answer loss' for s in skills) + ' |'
    rows = [head, '|---' * (1 + 2 * len(skills)) + '|']
    for name, row in table.items():
        rows.append(f'| {name} | ' + ' | '.join(f"{row[s]['accuracy'] * 100:.1f}% | {row[s]['loss']:.3f}" for s in skills) + ' |')
    return '\n'.join(rows) + '\n'


def loss_svg(curves: dict[str, list[tuple[int, float]]]) -> str:
    """Training loss (log scale) against step, one panel per stage, as a small standalone SVG."""
    w, h, pad = 260, 180, 34
    lo = math.log10(max(1e-4, min(v for c in curves.values() for _, v in c)))
    hi = math.log10(max(v for c in curves.values() for _, v in c))
    parts = []
    for i, (name, c) in enumerate(curves.items()):
        x0 = i * w
        last = c[-1][0]
        pts = ' '.join(f'{x0 + pad + (s / last) * (w - pad - 10):.1f},{10 + (hi - math.log10(max(v, 1e-4))) / (hi - lo) * (h - pad - 10):.1f}' for s, v in c)
        parts.append(f'<g><rect x="{x0 + pad}" y="10" width="{w - pad - 10}" height="{h - pad - 10}" fill="none" stroke="#ccc"/>'
                     f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>'
                     f'<text x="{x0 + pad + 4}" y="24" font-size="11">{name}: {c[-1][1]:.4f} at step {last}</text>'
                     f'<text x="{x0 + pad}" y="{h - 8}" font-size="10">step 0</text>'
                     f'<text x="{x0 + w - 10}" y="{h - 8}" font-size="10" text-anchor="end">{last}</text></g>')
    for frac in (0, 1):
        y = 10 + frac * (h - pad - 10)
        parts.append(f'<text x="{pad - 3}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{10 ** (hi - frac * (hi - lo)):.2g}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(curves)}" height="{h}" font-family="sans-serif">'
            f'<title>Training loss (answer tokens, log scale) per stage</title>{"".join(parts)}</svg>\n')


if __name__ == '__main__':
    main()
