"""Planning from the topology: team sizing (`medinfra plan team`)."""
