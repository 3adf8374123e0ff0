package vertex

import "encoding/json"

// projectOf is the project_id of a service account key, if any.
func projectOf(raw []byte) string {
	var k struct {
		ProjectID string `json:"project_id"`
	}
	_ = json.Unmarshal(raw, &k)
	return k.ProjectID
}

// privateKeyOf is the private_key of a credentials file, if it has one.
func privateKeyOf(raw []byte) string {
	var k struct {
		PrivateKey string `json:"private_key"`
	}
	_ = json.Unmarshal(raw, &k)
	return k.PrivateKey
}
