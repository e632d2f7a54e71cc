"""The laboratory: experiments and their registry, sweeps over grids and repeats, the sweep cache, profiles,
and the resources of a run. Import the module you need (`from poisonlab.lab import sweep`): this package
imports nothing itself, so that the command line's --help stays fast."""
