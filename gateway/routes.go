package gateway

// routes is the one place every route is listed.
func (s *Server) routes() {
	e := s.e
	e.GET("/static/*", serveStatic(s.static))
	e.GET("/favicon.ico", favicon)

	e.GET("/", s.home)
	e.GET("/register", s.signInPage)
	e.POST("/register", s.form(s.signIn))
	e.GET("/register/methods", s.methodsPage)
	e.POST("/register/methods", s.form(s.addMethod))
	e.POST("/register/reauth", s.form(s.reauth))
	e.GET("/register/methods/:id/verify", s.verifyMethodPage)
	e.POST("/register/methods/:id/verify", s.form(s.verifyMethod))
	e.POST("/register/methods/:id/resend", s.form(s.resendMethod))
	e.POST("/register/methods/:id/remove", s.form(s.removeMethod))
	e.POST("/register/methods/:id/passkey", s.passkeyForm(s.finishPasskey))
	e.POST("/register/signout", s.form(s.signOut))
	e.POST("/register/reconfirm", s.form(s.reconfirm))
	e.GET("/register/questions", s.questionsPage)
	e.POST("/register/questions", s.form(s.setQuestions))

	for _, kind := range []string{"reset", "unlock"} {
		p := "/" + kind
		e.GET(p, s.flowStartPage)
		e.POST(p, s.form(s.flowStart))
		e.GET(p+"/methods", s.flowMethodsPage)
		e.POST(p+"/send", s.form(s.flowSend))
		e.GET(p+"/code", s.flowCodePage)
		e.POST(p+"/verify", s.form(s.flowVerify))
		e.POST(p+"/passkey", s.passkeyForm(s.flowPasskey))
	}
	e.GET("/reset/password", s.resetPasswordPage)
	e.POST("/reset/password", s.form(s.resetPassword))
	e.GET("/reset/done", s.resetDone)
	e.GET("/unlock/complete", s.unlockCompletePage)
	e.POST("/unlock/complete", s.form(s.unlockComplete))
	e.GET("/unlock/done", s.unlockDone)
	e.GET("/change", s.changePage)
	e.POST("/change", s.form(s.change))
	e.GET("/change/done", s.changeDone)

	api := e.Group("/api/v1")
	api.POST("/session", s.apiSession)
	api.DELETE("/session", s.apiSignOut)
	api.GET("/methods", s.apiMethods)
	api.POST("/methods", s.apiAddMethod)
	api.POST("/methods/:id/verify", s.apiVerifyMethod)
	api.POST("/methods/:id/resend", s.apiResendMethod)
	api.DELETE("/methods/:id", s.apiRemoveMethod)
	api.GET("/questions", s.apiQuestions)
	for _, kind := range []string{"reset", "unlock"} {
		api.POST("/"+kind, s.apiFlowStart)
		api.POST("/"+kind+"/send", s.apiFlowSend)
		api.POST("/"+kind+"/verify", s.apiFlowVerify)
		api.POST("/"+kind+"/questions", s.apiFlowQuestions)
	}
	api.POST("/reset/policy", s.apiResetPolicy)
	api.POST("/reset/complete", s.apiResetComplete)
	api.POST("/unlock/complete", s.apiUnlockComplete)
	api.POST("/change", s.apiChange)
	s.adminAPIRoutes(api)
	s.adminRoutes()

	if s.svc.Demo() != nil {
		e.GET("/demo/outbox", s.demoOutboxPage)
		e.POST("/demo/lock", s.form(s.demoLock))
	}

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/healthz/deps", s.healthzDeps)
	e.GET("/metrics", s.stats.handler)
}
