"""``python -m grasp_jax COMMAND ...``: the ``grasp-jax`` command (:mod:`grasp_jax.cli`)."""

from grasp_jax.cli import main

if __name__ == "__main__":
    main()
