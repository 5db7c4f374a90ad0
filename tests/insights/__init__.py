"""Query insights: fingerprints, top statements, N+1, slow/failed capture, sqlcommenter."""
