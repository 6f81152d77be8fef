"""Training a style network: the run (`run`), what it trains (`tasks`), the LightningModule
(`module`), its data (`data`), the Trainer (`trainer`), checkpoints and Ctrl-C (`checkpoints`,
`callbacks`) and the bounded options (`options`). The commands are fastnst.train and
fastnst.distill."""
