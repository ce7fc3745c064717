"""The failure lab (`make lab`): for each pattern and three Celery-on-Redis traps, a naive version written
after the shape article-style code uses (`lab/naive/`) and the shop's own code, run against the same fault
in the same stack; the outcome of each is counted at the outside world (the sandbox's records) or in the
database. The shop never imports this package (an import-linter contract in pyproject.toml).
"""
