// Runs after tsc: builds the native pieces that are not TypeScript.
// Each builder is a separate module under scripts/ so that a failure names its part.
const steps = [];
for (const step of steps) await step();
