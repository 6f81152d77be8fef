"""fastnst's Hydra configs, installed as fastnst.conf. Importing it (Hydra does, to read them)
registers the structured configs that YAML files build on: `gatys_schema`, the options of
conf/gatys.yaml (fastnst.baseline.GatysConfig: types, defaults, ranges and help)."""

from hydra.core.config_store import ConfigStore

from fastnst.baseline import GatysConfig

ConfigStore.instance().store(name="gatys_schema", node=GatysConfig)
