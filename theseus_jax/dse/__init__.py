from .pareto import hypervolume_2d as hypervolume_2d, pareto_mask as pareto_mask
