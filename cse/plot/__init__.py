"""Figures of CSE results (matplotlib, Agg canvas: no pyplot, no display, no global state).

- `plot_depth_profile`, `group_profiles`: mean CSE per group against depth, with
  confidence bands, the clusters of a `cse.stats.compare` result and the boundary layers
  (``cse plot RESULT --by COORD``);
- `plot_tokens`: one text's tokens against the layers as a heatmap (``cse plot RESULT
  --text N``).
"""

from .profile import group_profiles, plot_depth_profile
from .style import BOUNDARY_COLOUR
from .tokens import TOKENS_PER_ROW, plot_tokens

__all__ = ["group_profiles", "plot_depth_profile", "plot_tokens"]
