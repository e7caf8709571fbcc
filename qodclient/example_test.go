package qodclient_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/qodwatch/qodwatch/qodclient"
	"github.com/qodwatch/qodwatch/qodclient/qodsim"
)

func Example() {
	sim := qodsim.NewServer(qodsim.Options{BearerToken: "t0ken"})
	defer sim.Close()

	c, err := qodclient.New(qodclient.Config{BaseURL: sim.URL, Auth: qodclient.NewBearer("t0ken")})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	req := qodclient.CreateSessionRequest{
		UeID:     qodclient.UeID{MSISDN: "+15551230007"},
		AsID:     qodclient.AsID{IPv4Addr: "203.0.113.10"},
		QoS:      qodclient.QoSE,
		Duration: 600,
	}

	// Record the intent under a transaction id before sending, so that an
	// ambiguous outcome can be reconciled later.
	txID := qodclient.NewTransactionID()
	s, err := c.Create(qodclient.WithTransactionID(ctx, txID), req)
	var unknown *qodclient.UnknownOutcomeError
	switch {
	case errors.As(err, &unknown):
		fmt.Println("maybe created; reconcile transaction", unknown.TransactionID)
		return
	case err != nil:
		panic(err)
	}
	fmt.Println("created for", s.Duration, "seconds")

	_, err = c.Create(ctx, req)
	fmt.Println("second session for the UE is a conflict:", errors.Is(err, qodclient.ErrConflict))

	fmt.Println("delete:", c.Delete(ctx, s.ID))
	fmt.Println("delete again:", c.Delete(ctx, s.ID))
	_, err = c.Get(ctx, s.ID)
	fmt.Println("get after delete is not found:", errors.Is(err, qodclient.ErrNotFound))
	// Output:
	// created for 600 seconds
	// second session for the UE is a conflict: true
	// delete: <nil>
	// delete again: <nil>
	// get after delete is not found: true
}
