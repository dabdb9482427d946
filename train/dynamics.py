"""`python -m train.dynamics`, the skill-dynamics command: an alias of train.eval.dynamics, where it lives
with the rest of the diagnosis suite (see that module for its usage)."""
from train.eval.dynamics import main

if __name__ == "__main__":
    main()
