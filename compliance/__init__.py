"""medinfra's control catalog (controls, frameworks, schemas), installed as package data `medinfra.control_catalog`."""
