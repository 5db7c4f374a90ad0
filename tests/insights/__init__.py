"""Query insights: fingerprints, top statements, N+1 detection, slow/failed capture, sqlcommenter."""
