"""Small shared helpers for code that loads diffusers/transformers models."""


def quiet_diffusers() -> None:
    """fgbg reports progress itself; diffusers' and transformers' loading bars would interleave."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    try:
        from transformers.utils import logging as tf_logging

        tf_logging.disable_progress_bar()
        tf_logging.set_verbosity_error()
    except ImportError:
        pass
