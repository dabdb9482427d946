"""`python -m train.evaluate`, the evaluation command: an alias of train.eval.evaluate, where it lives
with the rest of the diagnosis suite (see that module for its usage)."""
from train.eval.evaluate import main

if __name__ == "__main__":
    main()
