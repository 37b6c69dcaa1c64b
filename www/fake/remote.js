// Fake vendor script served by the remote scripts endpoint (/scripts).
window.__remoteLoaded = (window.__remoteLoaded || 0) + 1;
