/**
 * The analysis panel wired to the studio: what it shows and when it runs come from the studio's
 * analysis (studio-analysis.tsx); the recipe it is shown next to comes from the store.
 */
import { useStudio } from '../store-context.tsx';
import { AnalysisPanel } from './AnalysisPanel.tsx';
import { useStudioAnalysis } from './studio-analysis.tsx';

export function StudioAnalysisPanel({ download }: { download(name: string, blob: Blob): void }) {
  const analysis = useStudioAnalysis();
  const recipe = useStudio((s) => s.recipe);
  if (!analysis) return null;
  const { state, waiting, runner, updating, analyzeNow } = analysis;
  return (
    <AnalysisPanel
      result={state.result}
      recipe={recipe}
      status={state.status}
      waiting={waiting}
      updating={updating}
      onRun={analyzeNow}
      runDisabledReason={waiting}
      onCancel={() => runner.cancel()}
      download={download}
    />
  );
}
