"""Training the fgbg video model (issue 5): `fgbg prepare` (prepare.py), config (TOML), data, the loop.

Two stages (PAPER.md; the split is the paper's, the details ours):
  stage 1, single frames: ReferenceNet, the UNet's spatial layers, both encoders and the extra
           conv_in channels learn; the temporal blocks are frozen;
  stage 2, clips: only the temporal blocks learn; the previous-frame condition is present for
           `cond_prob` (half) of the samples, so the model learns first clips and continuations.
"""
