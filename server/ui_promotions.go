package server

// routesPromotions registers promotions, approve and reject — ui_promotions.go.
func (u *uiServer) routesPromotions() {}
