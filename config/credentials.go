package config

import (
	"os"
	"strings"
)

// credentialsVar is the one variable expanded in file settings: systemd
// sets it to the directory holding the unit's LoadCredential= files, which
// exist only while the service runs and are readable by it alone, so a
// config can name `${CREDENTIALS_DIRECTORY}/client-secret` without knowing
// where systemd puts them.
const credentialsVar = "CREDENTIALS_DIRECTORY"

// filePath resolves a file setting: ${CREDENTIALS_DIRECTORY} expanded, then
// relative to the config's directory. An unset variable is an error at
// path, not a file named "${CREDENTIALS_DIRECTORY}/...".
func (r *resolver) filePath(path, p string) string {
	const ref = "${" + credentialsVar + "}"
	if strings.Contains(p, ref) {
		dir, ok := os.LookupEnv(credentialsVar)
		if !ok || dir == "" {
			r.d.errorAt(path, "%s is not set: systemd sets it for a unit with LoadCredential=; elsewhere set it to the directory holding the files", credentialsVar)
			return ""
		}
		p = strings.ReplaceAll(p, ref, strings.TrimRight(dir, "/"))
	}
	return r.path(p)
}
