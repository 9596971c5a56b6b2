"""`make deploy-check`: static checks of deploy/k8s, deploy/Dockerfile and docker-compose.yml."""
