"""The stage runtime: running a stage, writing its files, what a result records, the numerics and device."""
