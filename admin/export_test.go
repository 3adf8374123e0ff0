package admin

// SetAuditExportPage makes the usage export read n records a page until the returned function
// restores the default, so a test walks many pages with few records. Not for parallel tests.
func SetAuditExportPage(n int) (restore func()) {
	old := auditExportPage
	auditExportPage = n
	return func() { auditExportPage = old }
}
