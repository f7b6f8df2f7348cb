//go:build tools

// Records the helm command as a dependency of this module; install.sh builds
// helm.sh/helm/v4/cmd/helm from it.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
