"""bench.py's sections, one module each: speed_NAME.py times ours against a
baseline side by side, accuracy_NAME.py scores ours against a reference.
Imported as `benches.NAME` only (from bench.py): the folder is never put on
sys.path, so these modules cannot shadow the project's own (serve, records...)."""
