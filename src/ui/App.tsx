export function App() {
  return (
    <main>
      <h1>Merge Studio</h1>
      <p>Model merging in the browser on WebGPU.</p>
    </main>
  );
}
