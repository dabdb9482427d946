"""`python -m train.wise_ft`, the WiSE-FT command: an alias of train.eval.wise_ft, where it lives
with the rest of the diagnosis suite (see that module for its usage)."""
from train.eval.wise_ft import main

if __name__ == "__main__":
    main()
