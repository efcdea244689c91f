"""Deployments as the deployment manual has them: deployed in one step from a hub, a path or the
library, edited (rolled), stopped, started; and declared in YAML specs."""
