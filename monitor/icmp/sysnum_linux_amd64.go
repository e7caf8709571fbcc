package icmp

// The syscall package lacks SYS_SENDMMSG on amd64.
const (
	sysRECVMMSG = 299
	sysSENDMMSG = 307
)
