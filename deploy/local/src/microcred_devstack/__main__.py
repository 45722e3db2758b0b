"""Entry point: `python -m microcred_devstack up|down|status|logs`."""

from .cli import main

if __name__ == "__main__":
    main()
