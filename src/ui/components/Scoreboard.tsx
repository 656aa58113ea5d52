/**
 * The scoreboard: the base, each expert and the current merge scored on the demo family's skills
 * (one bar per skill: exact-match accuracy, answer loss on hover), re-scored after every change of
 * the recipe (the merge is kept in the worker's memory, never exported; the inputs' scores are
 * cached there), and the perplexity of a pasted or dropped text for the same models side by side.
 * Both show progress and can be cancelled. Scoring runs while the board is on screen (it shares the
 * worker with the analysis and the merge, and waits while a merge runs); off screen, it catches up
 * when scrolled into view. The numbers are `merge-studio eval`'s (the same library
 * function runs in the worker). Models whose f32 weights exceed TAB_WEIGHT_LIMIT are refused with a
 * message naming the limit.
 */
import { useEffect, useMemo, useRef, useState, useSyncExternalStore, type DragEvent } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { firstExamples, parseTaskSet, type TaskSet } from '../../gpu/model/eval.ts';
import { errorInWords } from '../errors.ts';
import { formatBytes, formatMs } from '../format.ts';
import { recipeProblem } from '../recipe-model.ts';
import { ScoreRunner, type ScoreRunnerState } from '../score/score-runner.ts';
import type { StudioState } from '../store/index.ts';
import { useStudio } from '../store-context.tsx';
import type { EngineApi } from '../worker/client.ts';
import type { ScoreEntry, ScoreRequest } from '../worker/score-protocol.ts';
import './scoreboard.css';

/** f32 weight bytes a model may take to be scored in the tab (1 GiB: about 268 M parameters). */
export const TAB_WEIGHT_LIMIT = 2 ** 30;
/** Examples per skill the board scores (the first N of each skill's held-out set); 0 = all. */
const EXAMPLE_CHOICES = [16, 32, 0] as const;

export interface ScoreboardProps {
  engine: Pick<EngineApi, 'score'>;
  /** Where the task set lives (the demo family's tasks.json); absent or unreadable: perplexity only. */
  tasksUrl: string;
}

type TasksState = { status: 'loading' } | { status: 'ready'; tasks: TaskSet } | { status: 'none'; reason: string };

/** The models the board scores besides the merge: the base, then the recipe's models, by shelf name. */
function inputsOf(s: StudioState): { ref: string; label: string }[] {
  const refs = [...new Set([...(s.recipe.baseModel !== undefined ? [s.recipe.baseModel] : []), ...s.recipe.models.map((m) => m.model)])];
  return refs.map((ref) => {
    const m = s.shelf.find((x) => x.ref === ref);
    const o = m?.origin;
    return { ref, label: o?.kind === 'demo' || o?.kind === 'files' ? o.name : o?.kind === 'hub' ? o.repo : ref };
  });
}

/** Why the merge cannot be scored yet, in words, or null. */
function waitingReason(s: StudioState): string | null {
  const problem = recipeProblem(s.recipe);
  if (problem) return problem.message;
  const c = s.compat;
  if (c.status === 'done') return c.report.ok ? null : 'the models do not fit together (see Compatibility)';
  if (c.status === 'failed') return `the compatibility check failed: ${c.error.message}`;
  return c.status === 'idle' ? 'add models to the merge' : 'waiting for the models to load and be checked';
}

export function Scoreboard({ engine, tasksUrl }: ScoreboardProps) {
  const skillsRunner = useMemo(() => new ScoreRunner(engine), [engine]);
  const textRunner = useMemo(() => new ScoreRunner(engine, { debounceMs: 0 }), [engine]);
  const skills = useSyncExternalStore(skillsRunner.subscribe, skillsRunner.getState, skillsRunner.getState);
  const perplexity = useSyncExternalStore(textRunner.subscribe, textRunner.getState, textRunner.getState);
  const [tasks, setTasks] = useState<TasksState>({ status: 'loading' });
  const [examples, setExamples] = useState<number>(16);
  const [text, setText] = useState('');
  const s = useStudio(
    useShallow((st) => ({
      recipe: st.recipe,
      backend: st.backend,
      seed: st.seed,
      waiting: waitingReason(st),
      inputs: JSON.stringify(inputsOf(st)),
      allLocal: inputsOf(st).every(({ ref }) => {
        const kind = st.shelf.find((m) => m.ref === ref)?.origin.kind;
        return kind === 'demo' || kind === 'files';
      }),
      demoOnShelf: st.shelf.some((m) => m.origin.kind === 'demo'),
      merging: st.job.status === 'running' || st.job.status === 'picking',
    })),
  );
  const panel = useRef<HTMLElement>(null);
  const visible = useOnScreen(panel);

  useEffect(() => {
    let live = true;
    fetch(tasksUrl)
      .then(async (res) => {
        if (!res.ok) throw new Error(`${tasksUrl}: HTTP ${res.status}`);
        const tasks = parseTaskSet(await res.json(), tasksUrl);
        if (live) setTasks({ status: 'ready', tasks });
      })
      .catch((err: unknown) => live && setTasks({ status: 'none', reason: err instanceof Error ? err.message : String(err) }));
    return () => {
      live = false;
    };
  }, [tasksUrl]);

  const request = (extra: Pick<ScoreRequest, 'tasks' | 'text'>): ScoreRequest => ({
    recipe: s.waiting === null ? s.recipe : null,
    inputs: JSON.parse(s.inputs) as ScoreRequest['inputs'],
    backend: s.backend,
    seed: s.seed,
    weightLimit: TAB_WEIGHT_LIMIT,
    ...extra,
  });
  const taskSet = tasks.status === 'ready' && s.demoOnShelf ? (examples > 0 ? firstExamples(tasks.tasks, examples) : tasks.tasks) : null;
  const skillsKey = taskSet ? JSON.stringify([s.recipe, s.backend, s.seed, s.inputs, examples, s.waiting === null]) : null;
  const runSkills = (now: boolean) => {
    if (skillsKey && taskSet) skillsRunner.schedule(skillsKey, request({ tasks: taskSet, text: null }), { now });
  };
  // Local models are scored after every change (debounced); Hub ones only when asked (they are read whole).
  useEffect(() => {
    if (s.merging) skillsRunner.cancel();
    else if (skillsKey && s.allLocal && s.waiting === null && visible) runSkills(false);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [skillsKey, s.allLocal, s.waiting, s.merging, visible]);
  useEffect(() => () => {
    skillsRunner.cancel();
    textRunner.cancel();
  }, [skillsRunner, textRunner]);

  const textKey = JSON.stringify([s.recipe, s.backend, s.seed, s.inputs, text, s.waiting === null]);
  const onDrop = (ev: DragEvent<HTMLTextAreaElement>) => {
    const file = ev.dataTransfer.files[0];
    if (!file) return;
    // The page treats drops as models: this one is text for the box.
    ev.preventDefault();
    ev.stopPropagation();
    void file.text().then(setText);
  };

  return (
    <section ref={panel} id="scores" className="panel scores" aria-labelledby="scores-title" data-testid="scores.panel" tabIndex={-1}>
      <div className="panel-head">
        <h2 id="scores-title">Scores</h2>
        {taskSet ? (
          <label className="scores-examples">
            Examples per skill{' '}
            <select value={examples} onChange={(e) => setExamples(Number(e.target.value))} data-testid="scores.examples">
              {EXAMPLE_CHOICES.map((n) => (
                <option key={n} value={n}>
                  {n === 0 ? `all (${tasks.status === 'ready' ? tasks.tasks.skills[0].examples.length : ''})` : n}
                </option>
              ))}
            </select>
          </label>
        ) : null}
      </div>

      {taskSet ? (
        <>
          <RunLine state={skills} what="examples" waiting={s.waiting} onCancel={() => skillsRunner.cancel()} onRun={s.allLocal ? null : () => runSkills(true)} testid="scores.skills" />
          {skills.result ? <SkillBoard entries={skills.result.entries} skills={taskSet.skills.map((k) => k.name)} stale={skills.resultKey !== skillsKey} /> : null}
          <p className="field-note">
            Bars: exact-match accuracy of the greedy answer on the first {examples > 0 ? examples : 'all'} held-out examples of each skill (hover: answer loss in nats per token), as{' '}
            <code>merge-studio eval MERGE --tasks demo{examples > 0 ? ` --examples ${examples}` : ''}</code>. Models up to {formatBytes(TAB_WEIGHT_LIMIT)} of f32 weights run in this tab.
          </p>
        </>
      ) : (
        <p className="field-note" data-testid="scores.no-tasks">
          {tasks.status === 'loading' ? 'Loading the task set…' : 'Skill scores come with the demo models (their task set); perplexity works for any model with a tokenizer.'}
        </p>
      )}

      <div className="scores-text">
        <label htmlFor="scores-text">Perplexity of a text</label>
        <textarea
          id="scores-text"
          value={text}
          onChange={(e) => setText(e.target.value)}
          onDrop={onDrop}
          onDragOver={(e) => e.dataTransfer.types.includes('Files') && e.preventDefault()}
          placeholder="Paste text here, or drop a .txt file"
          rows={3}
          spellCheck={false}
          data-testid="scores.text"
        />
        <div className="scores-text-actions">
          <button type="button" disabled={text.trim() === '' || perplexity.status.status === 'running'} onClick={() => textRunner.schedule(textKey, request({ tasks: null, text }), { now: true })} data-testid="scores.perplexity.run">
            Measure perplexity
          </button>
          <RunLine state={perplexity} what="tokens" waiting={null} onCancel={() => textRunner.cancel()} onRun={null} testid="scores.perplexity" />
        </div>
        {perplexity.result ? <PerplexityTable entries={perplexity.result.entries} stale={perplexity.resultKey !== textKey} /> : null}
      </div>
    </section>
  );
}

/** Whether the element is on screen (always true where IntersectionObserver is missing). */
function useOnScreen(ref: { current: Element | null }): boolean {
  const [on, setOn] = useState(typeof IntersectionObserver === 'undefined');
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof IntersectionObserver === 'undefined') return;
    const observer = new IntersectionObserver((entries) => setOn(entries.some((e) => e.isIntersecting)));
    observer.observe(el);
    return () => observer.disconnect();
  }, [ref]);
  return on;
}

/** Progress with Cancel while running; the time of the last result; a failure; or why it waits. */
function RunLine({ state, what, waiting, onCancel, onRun, testid }: { state: ScoreRunnerState; what: string; waiting: string | null; onCancel(): void; onRun: (() => void) | null; testid: string }) {
  const st = state.status;
  if (st.status === 'running' || st.status === 'scheduled') {
    const p = st.status === 'running' ? st.progress : null;
    const words = !p ? 'Starting…' : p.phase === 'merging' ? `Merging in memory (${p.index + 1}/${p.count})` : `Scoring ${p.label} (${p.index + 1}/${p.count})${p.total > 0 ? `: ${p.done}/${p.total} ${what}` : ''}`;
    return (
      <div className="progress" data-testid={`${testid}.progress`}>
        <div className="progress-row">
          <progress value={p && p.total > 0 ? p.index + p.done / p.total : (p?.index ?? 0)} max={p?.count ?? 1} aria-label={words} />
          <button type="button" onClick={onCancel} data-testid={`${testid}.cancel`}>
            Cancel
          </button>
        </div>
        <div className="status-line">{words}</div>
      </div>
    );
  }
  if (st.status === 'failed') {
    const e = errorInWords(st.error);
    return (
      <p className="scores-error" role="alert" data-testid={`${testid}.error`}>
        <strong>{e.title}:</strong> {e.text}
      </p>
    );
  }
  const r = state.result;
  return (
    <div className="status-line" data-testid={`${testid}.status`}>
      {st.status === 'cancelled' ? <span>Cancelled.</span> : null}
      {r && state.latencyMs !== null ? (
        <span data-testid={`${testid}.timing`}>
          {r.mergeSeconds !== null ? `merged in ${formatMs(1000 * r.mergeSeconds)}, ` : ''}scored in {formatMs(1000 * (r.seconds - (r.mergeSeconds ?? 0)))} (change to scores: {formatMs(state.latencyMs)})
        </span>
      ) : null}
      {waiting ? <span>The merge waits: {waiting}.</span> : null}
      {onRun ? (
        <button type="button" onClick={onRun} data-testid={`${testid}.run`}>
          Score (reads every model whole)
        </button>
      ) : null}
    </div>
  );
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

function EntryError({ entry, span }: { entry: ScoreEntry; span: number }) {
  const e = errorInWords(entry.error!);
  return (
    <td colSpan={span} className="scores-error" data-testid={`scores.error.${entry.label}`}>
      {e.text}
    </td>
  );
}

function SkillBoard({ entries, skills, stale }: { entries: ScoreEntry[]; skills: string[]; stale: boolean }) {
  return (
    <table className={`score-board${stale ? ' is-stale' : ''}`} data-testid="scores.board">
      <thead>
        <tr>
          <th scope="col">Model</th>
          {skills.map((k) => (
            <th key={k} scope="col">
              {k}
            </th>
          ))}
          <th scope="col">mean</th>
        </tr>
      </thead>
      <tbody>
        {entries.map((entry) => {
          const scored = entry.report?.skills;
          return (
            <tr key={entry.label} className={entry.ref === null ? 'is-merge' : undefined} data-testid={`scores.row.${entry.label}`}>
              <th scope="row">{entry.label}</th>
              {!scored ? (
                <EntryError entry={entry} span={skills.length + 1} />
              ) : (
                <>
                  {scored.map((sk) => (
                    <td key={sk.skill} title={`${sk.skill}: ${pct(sk.accuracy)} exact (${sk.examples} examples), answer loss ${sk.meanLoss.toFixed(4)}`} data-testid={`scores.cell.${entry.label}.${sk.skill}`} data-accuracy={sk.accuracy} data-loss={sk.meanLoss}>
                      <div className="score-bar" aria-hidden="true">
                        <span style={{ width: `${100 * sk.accuracy}%` }} />
                      </div>
                      <span className="score-value">{pct(sk.accuracy)}</span>
                    </td>
                  ))}
                  <td className="score-mean">{pct(scored.reduce((a, sk) => a + sk.accuracy, 0) / scored.length)}</td>
                </>
              )}
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function PerplexityTable({ entries, stale }: { entries: ScoreEntry[]; stale: boolean }) {
  return (
    <table className={`score-board perplexity${stale ? ' is-stale' : ''}`} data-testid="scores.perplexity.table">
      <thead>
        <tr>
          {entries.map((e) => (
            <th key={e.label} scope="col" className={e.ref === null ? 'is-merge' : undefined}>
              {e.label}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        <tr>
          {entries.map((e) =>
            e.report?.perplexity ? (
              <td key={e.label} className={e.ref === null ? 'is-merge' : undefined} title={`${e.report.perplexity.tokens} tokens, ${e.report.perplexity.meanNll.toFixed(4)} nats per token, window ${e.report.perplexity.window}, stride ${e.report.perplexity.stride}`} data-testid={`scores.perplexity.${e.label}`} data-perplexity={e.report.perplexity.perplexity}>
                {e.report.perplexity.perplexity.toFixed(3)}
              </td>
            ) : (
              <EntryError key={e.label} entry={e} span={1} />
            ),
          )}
        </tr>
      </tbody>
    </table>
  );
}
