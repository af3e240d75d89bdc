"""Import the modules named on the command line in a fresh interpreter, then
print (one JSON list) which of the top-level packages named after --watch
got loaded with them: for tests that some modules never load others (torch):

    PYTHONPATH=. python tests/child_loaded_modules.py folds records --watch torch dataset
"""
import importlib
import json
import sys


def main(argv):
    split = argv.index('--watch')
    for name in argv[:split]:
        importlib.import_module(name)
    watched = set(argv[split + 1:])
    print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & watched)))


if __name__ == '__main__':
    main(sys.argv[1:])
