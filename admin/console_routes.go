package admin

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/admin/console"
)

// routeConsole serves the web console's embedded files under /console/. They need no token: the
// console signs in itself (POST /admin/session), and the files hold nothing secret.
func routeConsole(e *gin.Engine) {
	h := console.New("/console/")
	e.GET("/console", func(c *gin.Context) {
		console.SecurityHeaders(c.Writer)
		c.Redirect(http.StatusMovedPermanently, "/console/")
	})
	e.GET("/console/*path", gin.WrapH(h))
}
