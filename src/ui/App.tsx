/**
 * The studio page: header, shelf and compatibility on the left, method, recipe and merge on the
 * right. Files, folders and recipes can be dropped anywhere on the page.
 */
import { useEffect, useRef, useState } from 'react';
import type { AnalysisRunner } from './analysis/runner.ts';
import { StudioAnalysisPanel } from './analysis/StudioAnalysisPanel.tsx';
import { StudioAnalysisProvider } from './analysis/studio-analysis.tsx';
import { CompatPanel } from './components/CompatPanel.tsx';
import { Header } from './components/Header.tsx';
import { LayerStackEditor } from './components/LayerStackEditor.tsx';
import { LoraExportPanel } from './components/LoraExportPanel.tsx';
import { MergePanel } from './components/MergePanel.tsx';
import { MethodPanel } from './components/MethodPanel.tsx';
import { PublishPanel } from './components/PublishPanel.tsx';
import { RecipePanel } from './components/RecipePanel.tsx';
import { Scoreboard } from './components/Scoreboard.tsx';
import { Shelf } from './components/Shelf.tsx';
import { readDrop, takeDroppedItems, type DropContents } from './sources/dropped.ts';
import { useStudio, useStudioStore } from './store-context.tsx';
import type { EngineApi } from './worker/client.ts';

export interface AppProps {
  canPickFolder: boolean;
  download(name: string, blob: Blob): void;
  /** Runs analyses in the engine worker; without it the analysis panel is left out. */
  analysisRunner?: AnalysisRunner;
  /** Scores models in the engine worker; without it the scoreboard is left out. */
  scoreEngine?: Pick<EngineApi, 'score'>;
  /** Exports the merge as a LoRA of its base in the engine worker; without it that panel is left out. */
  loraEngine?: Pick<EngineApi, 'lora'>;
}

export function App({ canPickFolder, download, analysisRunner, scoreEngine, loraEngine }: AppProps) {
  const store = useStudioStore();
  const [dragging, setDragging] = useState(false);
  const depth = useRef(0);

  const accept = async (contents: DropContents) => {
    const state = store.getState();
    if (contents.models.length > 0) state.addDroppedModels(contents.models);
    for (const r of contents.recipes) state.importRecipe(await r.blob.text(), r.name);
  };

  // Drops anywhere on the page: folders are walked with the entries API.
  useEffect(() => {
    const isFiles = (ev: globalThis.DragEvent) => Array.from(ev.dataTransfer?.types ?? []).includes('Files');
    const onEnter = (ev: globalThis.DragEvent) => {
      if (!isFiles(ev)) return;
      depth.current++;
      setDragging(true);
    };
    const onLeave = () => {
      depth.current = Math.max(0, depth.current - 1);
      if (depth.current === 0) setDragging(false);
    };
    const onOver = (ev: globalThis.DragEvent) => {
      if (!isFiles(ev)) return;
      ev.preventDefault();
      if (ev.dataTransfer) ev.dataTransfer.dropEffect = 'copy';
    };
    const onDrop = (ev: globalThis.DragEvent) => {
      ev.preventDefault();
      depth.current = 0;
      setDragging(false);
      if (!ev.dataTransfer) return;
      const { entries, looseFiles } = takeDroppedItems(ev.dataTransfer);
      void readDrop(entries, looseFiles).then(accept);
    };
    window.addEventListener('dragenter', onEnter);
    window.addEventListener('dragleave', onLeave);
    window.addEventListener('dragover', onOver);
    window.addEventListener('drop', onDrop);
    return () => {
      window.removeEventListener('dragenter', onEnter);
      window.removeEventListener('dragleave', onLeave);
      window.removeEventListener('dragover', onOver);
      window.removeEventListener('drop', onDrop);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const page = (
    <div className="app">
      <SkipLinks />
      <Header />
      <FirstVisitLine />
      <main className="layout">
        <div className="column left">
          <Shelf onFiles={(c) => void accept(c)} />
          <CompatPanel />
        </div>
        <div className="column right">
          <MethodPanel />
          <LayerStackEditor />
          {analysisRunner ? <StudioAnalysisPanel download={download} /> : null}
          <MergePanel canPickFolder={canPickFolder} />
          {loraEngine ? <LoraExportPanel engine={loraEngine} download={download} /> : null}
          {scoreEngine ? <Scoreboard engine={scoreEngine} tasksUrl={`${import.meta.env.BASE_URL}demo/tasks.json`} /> : null}
          <PublishPanel analysisRunner={analysisRunner} />
          <RecipePanel onDownload={download} />
        </div>
      </main>
      {dragging ? <DropOverlay /> : null}
    </div>
  );
  return analysisRunner ? <StudioAnalysisProvider runner={analysisRunner}>{page}</StudioAnalysisProvider> : page;
}

const SECTIONS = [
  { id: 'models', label: 'Models' },
  { id: 'method', label: 'Method' },
  { id: 'analysis', label: 'Analysis' },
  { id: 'merge', label: 'Merge' },
] as const;

/**
 * The first stops of the Tab order: one link per part of the page. A link moves focus into its
 * section (the page address keeps the recipe: no #fragment navigation).
 */
function SkipLinks() {
  return (
    <nav className="skip-links" aria-label="Skip to a part of the page">
      {SECTIONS.map((s) => (
        <a
          key={s.id}
          href={`#${s.id}`}
          onClick={(e) => {
            e.preventDefault();
            const target = document.getElementById(s.id);
            target?.focus({ preventScroll: true });
            target?.scrollIntoView({ block: 'start' });
          }}
          data-testid={`skip.${s.id}`}
        >
          Skip to {s.label}
        </a>
      ))}
    </nav>
  );
}

/** What to do first, said once: shown while the demo set is on the shelf, until dismissed. */
function FirstVisitLine() {
  const show = useStudio((s) => s.firstVisit && s.shelf.some((m) => m.origin.kind === 'demo'));
  const dismiss = useStudio((s) => s.dismissFirstVisit);
  if (!show) return null;
  return (
    <div className="first-visit" role="note" data-testid="first-visit">
      <p>
        <strong>The demo set is loaded:</strong> move a slider, watch the charts, press Merge.
      </p>
      <button type="button" className="icon" onClick={dismiss} aria-label="Dismiss this tip" data-testid="first-visit.dismiss">
        ×
      </button>
    </div>
  );
}

function DropOverlay() {
  return (
    <div className="drop-overlay" aria-hidden="true">
      <div className="drop-box">
        <strong>Drop to add</strong>
        <span>model folders, .safetensors files, or a recipe (.yml)</span>
      </div>
    </div>
  );
}

