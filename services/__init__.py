"""The platform's services. They never import each other; they share only `shared/`."""
