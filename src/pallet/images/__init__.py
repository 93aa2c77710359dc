"""Image-level operations behind the everyday commands (images, inspect, history, tag, rmi,
prune, df, import, bootstrap). The CLI renders what these return; ``pallet.api`` re-exports them."""
