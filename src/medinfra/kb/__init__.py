"""The site knowledge base (`medinfra kb build`): an offline, bilingual, static HTML handbook."""
